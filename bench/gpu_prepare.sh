#!/usr/bin/env bash
# Builds .gpu/ (git-ignored), what the device run of bench.gpu_suite carries (bench/gpu_run.sh):
#   .gpu/wheels     packages the device image lacks, for its Python 3.12 (DeepSpeed built here:
#                   it is an sdist), at the versions this project pins;
#   .gpu/wheels-hf  transformers, peft and regex at our pins (the image has older ones);
#   .gpu/smollm2    SmolLM2-135M-Instruct's config, tokenizer and chat template, no weights
#                   (rows 3 and 4 time a random-init model of its shapes);
#   .gpu/minilm     all-MiniLM-L6-v2 in fp16 (45 MB: the fp32 file is over the 64 MiB a device
#                   call carries; row 5 upcasts it to fp32 before training).
# Run from anywhere after scripts/install.sh:  bash bench/gpu_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/wheels-hf
pins() { for name in "$@"; do echo "$name==$("$py" -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')"; done; }
platform=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64)
"$py" -m pip download -q --no-deps "${platform[@]}" -d .gpu/wheels \
    $(pins hjson pydantic pydantic_core annotated-types typing-inspection pydantic-settings \
           python-dotenv SQLAlchemy greenlet alembic Mako dill)
"$py" -m pip download -q --no-deps "${platform[@]}" -d .gpu/wheels-hf \
    $(pins transformers peft regex)  # the image's huggingface_hub (1.33) satisfies transformers
"$py" -m pip wheel -q --no-deps -w .gpu/wheels "$(pins deepspeed)"
"$py" - <<'PY'
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from conveyor.pretrained import SMOLLM2, resolve_pretrained
from conveyor.settings import load_settings
from training.modeling import MINILM, resolve_base

converted = resolve_pretrained(SMOLLM2, load_settings().cache_dir)
assert converted is not None
target = Path(".gpu/smollm2")
for name in ("config.json", "generation_config.json"):
    if (converted.path / name).is_file():
        (target.parent / "smollm2").mkdir(exist_ok=True)
        (target / name).write_bytes((converted.path / name).read_bytes())
AutoTokenizer.from_pretrained(str(converted.path)).save_pretrained(str(target))
minilm = resolve_base(MINILM)
AutoModel.from_pretrained(minilm, dtype=torch.float16).save_pretrained(".gpu/minilm")
AutoTokenizer.from_pretrained(minilm).save_pretrained(".gpu/minilm")
PY
du -sh .gpu/*
