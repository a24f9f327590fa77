#!/usr/bin/env bash
# Smoke test of a running inkwell on 127.0.0.1:9000 (used with ../shared/tools/container-check):
# classify a sample PDF, run it as a /jobs job, check /health, keep a correction, train on data/smoke
# inside the container and activate the version, then restart the container (podman or docker, when
# reachable; INKWELL_RESTART_CMD overrides) and check the correction, the version and the active
# model survived it (the named volumes of docker-compose.yml).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${INKWELL_URL:-http://127.0.0.1:9000}
py=${PYTHON:-python3}

echo "== /health"
curl -fsS "$base/health" | tee /tmp/inkwell-health.json; echo
$py -c 'import json,sys; h=json.load(open("/tmp/inkwell-health.json")); assert h["status"]=="ok", h'
# the image ships libtesseract with the command: OCR must run in-process there
$py -c 'import json,sys; h=json.load(open("/tmp/inkwell-health.json")); assert "libtesseract" in h["ocr_engine"], h'

echo "== /classify samples/typed_report.pdf"
curl -fsS -F file=@samples/typed_report.pdf "$base/classify" | tee /tmp/inkwell-classify.json; echo
$py - <<'PY'
import json
r = json.load(open("/tmp/inkwell-classify.json"))
assert r["document"]["page_count"] == 2, r
assert [p["page"] for p in r["pages"]] == [1, 2], r
assert all(p["label"] == "typed" for p in r["pages"]), r
print("classify OK:", r["label"], [round(p["confidence"], 3) for p in r["pages"]])
PY

echo "== /jobs samples/typed_script_font_and_report.pdf (local engine)"
job=$(curl -fsS -F file=@samples/typed_script_font_and_report.pdf "$base/jobs")
echo "$job"
id=$(echo "$job" | $py -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 60); do
  body=$(curl -fsS "$base/jobs/$id")
  state=$(echo "$body" | $py -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  case "$state" in succeeded|failed) break ;; esac
  sleep 1
done
echo "$body" | $py -c '
import json, sys
b = json.load(sys.stdin)
assert b["status"] == "succeeded" and b["engine"] == "local", b
assert [p["page"] for p in b["result"]["pages"]] == [1, 2], b
print("jobs OK:", b["result"]["label"], [p["label"] for p in b["result"]["pages"]])
'
curl -fsS -X DELETE "$base/jobs/$id" -o /dev/null -w "DELETE %{http_code}\n"

echo "== /corrections (the corrections volume)"
corr=$(curl -fsS -F file=@samples/typed_report.pdf -F page=2 -F label=handwritten "$base/corrections")
echo "$corr"
cid=$(echo "$corr" | $py -c 'import json,sys; c=json.load(sys.stdin); assert c["label"]=="handwritten" and c["page"]==2, c; print(c["id"])')
curl -fsS "$base/corrections" | $py -c 'import json,sys; b=json.load(sys.stdin); assert b["dataset"]=="corrections" and b["folder"]=="/corrections" and b["count"]>=1, b; print("corrections OK:", b["count"], "kept in", b["folder"])'

echo "== /train on data/smoke"
# ./data is the container's /data (docker-compose.yml): write the small generated dataset there
if [ ! -d data/smoke ]; then
  if command -v poetry >/dev/null 2>&1; then poetry run python scripts/make_smoke_dataset.py data/smoke
  else "${PROJECT_PYTHON:-.venv/bin/python}" scripts/make_smoke_dataset.py data/smoke; fi
fi
job=$(curl -fsS -H 'content-type: application/json' \
      -d '{"dataset": "smoke", "augment": false, "test_size": 0.4, "activate": true}' "$base/train")
echo "$job"
id=$(echo "$job" | $py -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 1 150); do
  status=$(curl -fsS "$base/train/$id")
  state=$(echo "$status" | $py -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  [ "$state" = succeeded ] && break
  [ "$state" = failed ] && { echo "training failed: $status"; exit 1; }
  sleep 2
done
[ "$state" = succeeded ] || { echo "training did not finish: $status"; exit 1; }
version=$(echo "$status" | $py -c 'import json,sys; print(json.load(sys.stdin)["version_id"])')
curl -fsS "$base/models" | $py -c "import json,sys; ids=[v['id'] for v in json.load(sys.stdin)['versions']]; assert '$version' in ids, ids; print('models:', ids)"

echo "== restart: corrections, versions and the active model are on volumes"
restart=${INKWELL_RESTART_CMD:-}
if [ -z "$restart" ]; then
  for tool in podman docker; do
    if command -v $tool >/dev/null 2>&1; then
      name=$($tool ps --format '{{.Names}}' 2>/dev/null | grep -m1 inkwell || true)
      if [ -n "$name" ]; then restart="$tool restart $name"; break; fi
    fi
  done
fi
if [ -z "$restart" ]; then
  echo "no container engine reachable from here: restart check skipped"
else
  echo "$restart"; $restart >/dev/null
  for _ in $(seq 1 90); do curl -fsS "$base/health" -o /dev/null 2>/dev/null && break; sleep 1; done
  curl -fsS "$base/corrections/$cid" | $py -c 'import json,sys; c=json.load(sys.stdin); assert c["label"]=="handwritten" and c["page"]==2, c; print("correction kept:", c["id"])'
  curl -fsS "$base/models" | $py -c "import json,sys; m=json.load(sys.stdin); assert m['active']=='$version', m['active']; print('active after restart:', m['active'])"
  curl -fsS "$base/train/$id" | $py -c "import json,sys; j=json.load(sys.stdin); assert j['status']=='succeeded' and j['version_id']=='$version', j; print('training job record kept')"
fi
curl -fsS -X POST "$base/models/default/activate" -o /dev/null -w "activate default %{http_code}\n"
curl -fsS -X DELETE "$base/corrections/$cid" -o /dev/null -w "DELETE %{http_code}\n"
echo "SMOKE OK"
