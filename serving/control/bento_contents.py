"""What a Bento must carry: the project packages and the Python packages the service imports.

Read from the service itself, not from a list kept by hand: a child interpreter imports
``serving.service`` and reports every module it loaded. The project packages among them are
the Bento's source (``include``); the rest, mapped to their distributions and pinned to the
versions installed here, are its Python packages. Modules the service imports only once it
runs (the model loader's transformers, Prometheus) or when a setting asks for them (Redis,
Postgres, ONNX Runtime) are imported by the probe too, so their own dependencies come along.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

__all__ = ["ON_DEMAND_MODULES", "BentoContents", "bento_contents"]

PROJECT_PACKAGES = frozenset({"conveyor", "data_checks", "training", "gates", "serving", "flows"})
# imported once the service runs, or on demand: CONVEYOR_REDIS_URL, a postgresql:// registry,
# the onnx backend, the llama.cpp backend of GGUF versions
ON_DEMAND_MODULES = (
    "transformers", "safetensors.torch", "tokenizers", "prometheus_client", "redis", "psycopg",
    "onnxruntime", "xllamacpp", "gguf",
)  # fmt: skip
LAZY_DISTRIBUTIONS = ("psycopg-binary",)  # psycopg's C speedups: a distribution, no module
_PROBE = (
    "import importlib, json, sys\n"
    "import serving.api.service\n"
    "from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, "
    "AutoTokenizer\n"
    f"for name in {ON_DEMAND_MODULES!r}: importlib.import_module(name)\n"
    "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
)


class BentoContents:
    """``include`` globs (relative to the repository) and pinned ``packages``."""

    def __init__(self, include: list[str], packages: list[str]) -> None:
        self.include = include
        self.packages = packages


def _imported_by_service(repo: Path) -> set[str]:
    with tempfile.TemporaryDirectory(prefix="conveyor-probe-") as home:
        env = {**os.environ, "CONVEYOR_HOME": home, "BENTOML_HOME": str(Path(home) / "bentoml")}
        env.pop("CONVEYOR_BENTO_MODEL", None)
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def _pinned(distributions: set[str]) -> list[str]:
    pins = []
    for name in sorted(distributions, key=str.lower):
        try:
            version = metadata.version(name).split("+")[0]  # torch 2.13.0+cpu: any build
            pins.append(f"{name}=={version}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def bento_contents(repo: Path) -> BentoContents:
    """What the service in ``repo`` imports, as a Bento's include list and package pins."""
    modules = _imported_by_service(repo)
    project = sorted(modules & PROJECT_PACKAGES)
    owners = metadata.packages_distributions()
    third = modules - PROJECT_PACKAGES - set(sys.stdlib_module_names) - {"__main__"}
    distributions = {dist for module in third for dist in owners.get(module, [])}
    distributions.discard("conveyor")
    include = [f"{package}/**/*.py" for package in project]
    if "conveyor" in project:
        include += ["conveyor/migrations/*", "conveyor/py.typed"]
    return BentoContents(include, _pinned(distributions | set(LAZY_DISTRIBUTIONS)))
