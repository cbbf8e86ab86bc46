"""A process that exits while its decode engines are mid-step exits cleanly, every time.

Before, a decode thread still inside a torch step while the interpreter finalized aborted the
process (SIGABRT, "terminate called without an active exception") about one run in five:
``conveyor promote`` of a LoRA version was read as failed after it had finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.paths import REPO_ROOT

SCRIPT = """
import asyncio, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
from serving.engine.decoding import DecodeEngine
from serving.engine.params import SamplingParams

model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
engines = [DecodeEngine(model, tokenizer, max_batch=4, context=2048) for _ in range(3)]

async def main():
    params = SamplingParams(max_tokens=1500, temperature=1.0)
    for engine in engines:
        for _ in range(4):
            asyncio.ensure_future(engine.complete([5, 6, 7], params))
    await asyncio.sleep(0.5)  # every engine is decoding when the process ends

asyncio.run(main())
print("finished", flush=True)
"""


@pytest.mark.integration
def test_exiting_with_engines_mid_step_never_aborts(tiny_llama: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    codes = []
    for _ in range(4):
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tiny_llama)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "finished" in done.stdout, done.stderr[-2000:]
        codes.append(done.returncode)
    assert codes == [0, 0, 0, 0], codes
