"""The layers: the HTTP package sits on top, nothing below it imports it."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

APP = ROOT / "app"
ALLOWED = {APP / "cli.py"}  # `python -m app serve` starts the API
"""Modules outside ``app/api`` that may import it."""


def _imported(path: Path) -> set[str]:
    """Every module name ``path`` imports (top-level or inside functions, typing-only included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _is_api(name: str) -> bool:
    return name == "app.api" or name.startswith("app.api.")


def test_no_module_below_the_api_imports_it() -> None:
    below = [p for p in APP.rglob("*.py") if "api" not in p.relative_to(APP).parts[:1]]
    assert len(below) > 30  # the walk found the package
    offenders = {
        str(p.relative_to(ROOT)): sorted(n for n in _imported(p) if _is_api(n))
        for p in below
        if p not in ALLOWED
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_check_sees_an_api_import(tmp_path: Path) -> None:
    """The check above can fail: these spellings are all found."""
    f = tmp_path / "m.py"
    f.write_text(
        "from app.api.schemas import PageResult\n"
        "def f():\n    import app.api.main\n"
        "from app import api\n",
        encoding="utf-8",
    )
    found = sorted(n for n in _imported(f) if _is_api(n))
    assert found == ["app.api", "app.api.main", "app.api.schemas", "app.api.schemas.PageResult"]
