#!/usr/bin/env bash
# Run the test suite with branch coverage of app/ (terminal report + coverage.xml, fails under 85 %).
# Extra arguments pass through to pytest, e.g. ./run_tests.sh -k loader -x
set -euo pipefail
cd "$(dirname "$0")"
run() { if command -v poetry >/dev/null 2>&1 && [ -z "${INKWELL_NO_POETRY:-}" ]; then poetry run "$@"; else "$@"; fi; }
run pytest --cov=app --cov-branch --cov-report=term-missing --cov-report=xml --cov-fail-under=85 "$@"
