#!/usr/bin/env bash
# The README's first command: install, then run the demo on the shipped CLINC150 + MiniLM recipe.
# Extra arguments go to `conveyor demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export TORCH_EXTENSIONS_DIR="${TORCH_EXTENSIONS_DIR:-$HOME/.cache/conveyor/torch_extensions}"
exec .venv/bin/conveyor demo "$@"
