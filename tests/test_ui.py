"""The upload page, end to end in headless Chromium (skipped only where Chromium is missing)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.config import Settings
from tests.conftest import SAMPLES, needs_tesseract

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)


def test_index_is_served_offline(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    html = r.text
    assert 'type="file"' in html and "classify" in html
    assert "http://" not in html and "https://" not in html  # no CDN: works offline


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    settings = settings.model_copy(update={"corrections_dir": tmp_path / "corrections"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@needs_tesseract
@needs_chromium
def test_upload_page_shows_verdicts_in_chromium(live_server: str, tmp_path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,1400",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(live_server)
        assert "inkwell" in driver.title
        driver.find_element(By.ID, "file").send_keys(
            str(SAMPLES / "typed_script_font_and_report.pdf")
        )
        wait = WebDriverWait(driver, 120)
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Done"))
        cards = driver.find_elements(By.CSS_SELECTOR, ".page")
        assert len(cards) == 2
        labels = [c.get_attribute("data-label") for c in cards]
        assert all(label in ("handwritten", "typed", "mixed") for label in labels)
        assert "confidence" in cards[0].text and "lines" in cards[0].text
        wait.until(
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('.page canvas')].every(c => c.width > 0)"
            )
        )
        shot = tmp_path / "upload-page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000

        # a click on a thumbnail opens the page at full size, boxes drawn over it
        small = driver.execute_script("return document.querySelector('.page img').clientWidth")
        cards[0].find_element(By.CSS_SELECTOR, ".thumb").click()
        wait.until(lambda d: d.execute_script("return document.getElementById('viewer').open"))
        wait.until(
            lambda d: d.execute_script(
                "const c = document.getElementById('viewer-canvas');"
                "const i = document.getElementById('viewer-img');"
                "return i.complete && c.width === i.naturalWidth && c.width > 0"
            )
        )
        full = driver.execute_script(
            "const i = document.getElementById('viewer-img');"
            "const c = document.getElementById('viewer-canvas');"
            "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let inked = 0; for (let k = 3; k < px.length; k += 4) if (px[k] > 0) inked++;"
            "return {natural: Math.max(i.naturalWidth, i.naturalHeight), shown: i.clientWidth,"
            " inked: inked, title: document.getElementById('viewer-title').textContent}"
        )
        assert full["natural"] >= 1000  # large enough to check a box around a handwritten figure
        assert full["shown"] > 2 * small
        assert full["inked"] > 0  # the line boxes are drawn on the full-size page
        assert full["title"].startswith("Page 1:")
        driver.find_element(By.ID, "viewer-close").click()
        wait.until(lambda d: not d.execute_script("return document.getElementById('viewer').open"))

        # a wrong verdict is corrected in one click, and listed
        label = cards[0].get_attribute("data-label")
        other = next(x for x in ("handwritten", "typed", "mixed") if x != label)
        cards[0].find_element(By.CSS_SELECTOR, f".fix button[data-label='{other}']").click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".page .done"), other))
        wait.until(ec.text_to_be_present_in_element((By.ID, "corrections-count"), "1"))
        item = driver.find_element(By.CSS_SELECTOR, "#corrections-list li")
        assert "typed_script_font_and_report.pdf, page 1" in item.text and other in item.text
        manifest = tmp_path / "corrections" / "manifest.csv"
        assert f",{other},corrections," in manifest.read_text(encoding="utf-8")
        item.find_element(By.TAG_NAME, "button").click()  # remove
        wait.until(ec.text_to_be_present_in_element((By.ID, "corrections-count"), "0"))
        assert manifest.read_text(encoding="utf-8").count("\n") == 1  # the header alone

        # a bad file is reported plainly, not as a crash
        bad = tmp_path / "notes.pdf"
        bad.write_text("not a pdf")
        driver.find_element(By.ID, "file").send_keys(str(bad))
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Error 415"))
        assert driver.find_element(By.ID, "status").get_attribute("class") == "error"
    finally:
        driver.quit()
