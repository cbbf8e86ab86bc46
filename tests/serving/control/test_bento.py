"""A packaged Bento starts and answers as BentoML users start it (issue 13, item 1; issue 22,
item 6).

``conveyor package`` builds the Bento; ``bentoml serve <bento>`` then runs from a temp folder,
with no ``CONVEYOR_*`` variable set, in interpreters where the checkout cannot be imported (a
``sitecustomize`` on PYTHONPATH, which every BentoML worker inherits, removes the editable
install's finder): the service imports only what the Bento carries, its pin included. It must
load its pinned model and answer /classify, naming that version.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor.ports import free_port
from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.bento_pin import PIN_PATH
from serving.control.packaging import package_version
from testbed.live_server import wait_ready
from testbed.paths import REPO_ROOT
from testbed.versions import make_version

pytestmark = pytest.mark.integration

HIDE_CHECKOUT = """
import sys
sys.meta_path[:] = [
    f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")
]
sys.path[:] = [p for p in sys.path if p.rstrip("/") != {checkout!r}]
"""


def test_a_built_bento_serves_its_pin_with_no_conveyor_variable_and_no_checkout(
    registry: Registry, settings: Settings, tokenizer: Any, tmp_path: Path
) -> None:
    import bentoml

    version = make_version(registry, settings, tokenizer, 0)
    packaged = package_version(registry, version)
    assert packaged.bento_tag is not None
    bento = bentoml.bentos.get(packaged.bento_tag)
    requirements = (Path(bento.path) / "env" / "python" / "requirements.txt").read_text()
    names = {line.split("==")[0].lower() for line in requirements.split()}
    assert names >= {"torch", "transformers", "redis", "psycopg", "onnxruntime", "sqlalchemy"}
    assert sorted(p.name for p in (Path(bento.path) / "src").iterdir() if p.is_dir()) == [
        "conveyor", "serving",
    ]  # fmt: skip
    pin = json.loads((Path(bento.path) / "src" / PIN_PATH).read_text())
    assert pin == {"model": packaged.model_tag}
    hide = tmp_path / "hide"
    hide.mkdir()
    checkout = str(REPO_ROOT)
    assert not (Path(checkout) / PIN_PATH).exists(), "packaging wrote into the checkout"
    (hide / "sitecustomize.py").write_text(HIDE_CHECKOUT.format(checkout=checkout))
    env = {  # what a new user's shell has: no CONVEYOR_* variable, no checkout on the path
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(hide),
        # The home the Bento really lies in: BentoML fixes its store on first use in a process,
        # so in a whole test session it can be an earlier test's home, not this one's.
        "BENTOML_HOME": str(Path(bento.path).parents[2]),
        "BENTOML_DO_NOT_TRACK": "True",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('serving'))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "None", "the checkout is still importable"
    port = free_port()
    log = tmp_path / "bento.log"
    command = [sys.executable, "-m", "bentoml", "serve", packaged.bento_tag, "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        try:
            wait_ready(port, timeout=120, process=server)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}:\n{log.read_text()[-3000:]}") from exc
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"text": "set a timer for five minutes"})
        conn.request("POST", "/classify", body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        assert answer["version"] == version and answer["results"][0]["label"]
        assert response.getheader("X-Model-Version") == version
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
