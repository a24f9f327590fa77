#!/usr/bin/env bash
# Smoke test of the scale-out compose file (run on the host against port 9000 by container-check):
#   ../shared/tools/container-check -f docker-compose.scale.yml -- bash scripts/container_smoke_scale.sh
# Waits for two rq workers, sends a 45-page PDF to /jobs (three 20-page tasks), polls until it is
# done and checks every page came back.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${BASE:-http://127.0.0.1:9000}
PY=${PY:-.venv/bin/python}
for _ in $(seq 1 120); do
  workers=$(curl -fsS "$BASE/health" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["jobs"].get("workers", 0))' || echo 0)
  [ "$workers" -ge 2 ] && break
  sleep 1
done
echo "smoke: $workers rq workers listening"
[ "$workers" -ge 2 ]
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" - "$tmp/long.pdf" <<'PY'
import sys
from PIL import Image
src = [Image.open(f"samples/{n}").convert("L") for n in ("typed_minutes.png", "typed_script_font_note.png")]
pages = [src[i % 2] for i in range(45)]
pages[0].save(sys.argv[1], format="PDF", save_all=True, append_images=pages[1:], resolution=100)
PY
start=$(date +%s%N)
job=$(curl -fsS -F "file=@$tmp/long.pdf;type=application/pdf" "$BASE/jobs")
echo "smoke: POST /jobs answered in $(( ($(date +%s%N) - start) / 1000000 )) ms"
id=$(echo "$job" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 600); do
  body=$(curl -fsS "$BASE/jobs/$id")
  status=$(echo "$body" | "$PY" -c 'import json,sys; b=json.load(sys.stdin); print(b["status"], b["pages_done"])')
  echo "smoke: $status"
  case "$status" in succeeded*|failed*) break ;; esac
  sleep 2
done
echo "$body" | "$PY" -c '
import json, sys
b = json.load(sys.stdin)
assert b["status"] == "succeeded", b
pages = b["result"]["pages"]
assert [p["page"] for p in pages] == list(range(1, 46)), "pages missing"
print("smoke: job done,", len(pages), "pages, labels", sorted({p["label"] for p in pages}))
'
curl -fsS -X DELETE "$BASE/jobs/$id" -o /dev/null -w "smoke: DELETE %{http_code}\n"
