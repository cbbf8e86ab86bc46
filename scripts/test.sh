#!/usr/bin/env bash
# The README's test command: install, lint, type-check, then every test (unit, integration, e2e).
# Extra arguments go to pytest, e.g.  bash scripts/test.sh -m unit
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

# Build caches that outlive a checkout: DeepSpeed/torch JIT extensions are compiled once here.
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$HOME/.cache/conveyor/torch_extensions}"
mkdir -p "$TORCH_EXTENSIONS_DIR"

echo "[test] ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "[test] import layers (import-linter)"
.venv/bin/lint-imports --no-cache
echo "[test] mypy"
.venv/bin/mypy
echo "[test] pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "[test] pytest collected no tests" >&2
    exit 1
fi
exit "$status"
