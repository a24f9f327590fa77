#!/usr/bin/env bash
# Format and lint the project: ruff format, ruff check, mypy (strict on app/).
# ./lint_module.sh          fixes what ruff can fix, then checks
# ./lint_module.sh --check  changes nothing (CI)
set -euo pipefail
cd "$(dirname "$0")"
run() { if command -v poetry >/dev/null 2>&1 && [ -z "${INKWELL_NO_POETRY:-}" ]; then poetry run "$@"; else "$@"; fi; }
targets=(app tests bench samples scripts)
if [ "${1:-}" != "--check" ]; then
  run ruff format "${targets[@]}"
  run ruff check --fix "${targets[@]}"
fi
run ruff format --check "${targets[@]}"
run ruff check "${targets[@]}"
run mypy
echo "lint: OK"
