"""What a person sees, in a real browser: the Prefect artifacts of a retrain and the Swagger page.

Debian's ``chromium`` driven by playwright (its own browser download fails offline). After a
short retrain through the real flow on a real Prefect server, the artifacts of the run must
show the plot, keep every table inside its column and render no quote block; the model
server's Swagger page must answer its own example with 200. Screenshots are kept in
``CONVEYOR_SCREENSHOTS`` (CI sets and prints it) or the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.ports import free_port
from conveyor.settings import Settings
from flows.server import ensure_prefect_server, stop_prefect_server
from gates.text.plot import SHOWN_WIDTH_PX
from serving.control.daemon import ensure_model_server, stop_model_server
from testbed.clinc import write_slice
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

DEPLOYMENT = "tiny-intents"
RUN_FLOW = (
    "import json, sys\n"
    "from flows import retrain\n"
    "print('OUTCOME', json.dumps(retrain(sys.argv[1]), default=str), flush=True)\n"
)
# Every table's right edge within its column's; no quote block; images decoded.
PAGE_FACTS = """() => {
  const main = document.querySelector('main') || document.body;
  const tables = [...main.querySelectorAll('table')].map(t => {
    const column = t.parentElement.getBoundingClientRect();
    const box = t.getBoundingClientRect();
    return {width: Math.round(box.width), column: Math.round(column.width),
            overflow: Math.round(box.right - column.right), text: t.innerText.slice(0, 80)};
  });
  const images = [...main.querySelectorAll('img')].map(i => ({
    src: i.src.slice(0, 30), loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth,
    shown: Math.round(i.getBoundingClientRect().width)}));
  return {tables, images, quotes: main.querySelectorAll('blockquote').length,
          text: main.innerText};
}"""


@pytest.fixture
def retrained(tmp_path: Path, conveyor_home: Path, tiny_bert: Path) -> Iterator[dict[str, Any]]:
    """A real Prefect server and one retrain of a tiny deployment, promoted and served."""
    write_slice("train", 100, tmp_path / "train.jsonl")
    write_slice("validation", 20, tmp_path / "validation.jsonl")
    write_slice("test", 30, tmp_path / "test.jsonl")
    recipe = {
        "name": DEPLOYMENT,
        "task": "classification",
        "data": {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"},
        "model": {"base": str(tiny_bert), "max_length": 32},
        "training": {"epochs": 3, "batch_size": 16, "lr": 3.0e-3, "seed": 5},
        "gates": {"min_accuracy": 0.3},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    settings = Settings()
    prefect = ensure_prefect_server(settings, free_port())
    env = {**os.environ, "PREFECT_API_URL": prefect.api_url, "PYTHONUNBUFFERED": "1"}
    try:
        flow = subprocess.run(
            [sys.executable, "-c", RUN_FLOW, str(path)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert flow.returncode == 0, (flow.stdout + flow.stderr)[-3000:]
        line = next(row for row in flow.stdout.splitlines() if row.startswith("OUTCOME "))
        outcome = json.loads(line.removeprefix("OUTCOME "))
        assert outcome["promoted"], outcome
        model = ensure_model_server(settings, DEPLOYMENT, free_port())
        yield {"prefect": prefect.url, "api": prefect.api_url, "endpoint": model.url}
    finally:
        stop_model_server(settings, DEPLOYMENT)
        stop_prefect_server(settings)


def _artifacts(api: str) -> dict[str, str]:
    request = urllib.request.Request(
        f"{api}/artifacts/filter",
        data=json.dumps({"limit": 50}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return {a["key"]: a["id"] for a in json.loads(response.read()) if a.get("key")}


def test_artifacts_and_swagger_read_well_in_a_real_browser(
    retrained: dict[str, Any], browser: Any, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else None
        ),
    )
    keys = _artifacts(retrained["api"])
    for ui, base in (("v2", "/v2"), ("v1", "")):  # the current UI, and the older one at /
        for what in ("gate-verdict", "gate-checks", "data-validation", "data-checks"):
            key = f"{DEPLOYMENT}-{what}"
            assert key in keys, sorted(keys)
            page.goto(f"{retrained['prefect']}{base}/artifacts/artifact/{keys[key]}")
            page.wait_for_selector("table", timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(screenshots / f"prefect-{ui}-{what}.png"), full_page=True)
            facts = page.evaluate(PAGE_FACTS)
            assert facts["tables"], (ui, what, facts["text"][:500])
            for table in facts["tables"]:
                assert table["overflow"] <= 1, (ui, what, table)
            assert facts["quotes"] == 0, (ui, what)
            if what == "gate-verdict":
                plots = [i for i in facts["images"] if i["src"].startswith("data:image/png")]
                assert plots, (ui, facts["images"])
                drawn = SHOWN_WIDTH_PX
                assert all(i["loaded"] and i["width"] == drawn for i in plots), facts["images"]
                # Drawn for the width it is shown at: not shrunk (its labels keep their size).
                assert all(i["shown"] >= 0.9 * i["width"] for i in plots), (ui, facts["images"])
                assert facts["text"].index("What the gate judged") < facts["text"].index(
                    "headline"
                ), (ui, facts["text"][:500])
                assert ">= 0.3000" in facts["text"] and "0.30000" not in facts["text"]
            if what == "gate-checks":
                assert "≥ 0.3000" in facts["text"], (ui, facts["text"][:500])

    # The promotion artifact: when it was written, a straight move called so, no endpoint yet.
    for ui, base in (("v2", "/v2"), ("v1", "")):
        page.goto(
            f"{retrained['prefect']}{base}/artifacts/artifact/{keys[f'{DEPLOYMENT}-promotion']}"
        )
        page.wait_for_selector("text=Promoted", timeout=60_000)
        page.screenshot(path=str(screenshots / f"prefect-{ui}-promotion.png"), full_page=True)
        said = page.evaluate(PAGE_FACTS)["text"]
        assert "straight move, no canary" in said and "canary 100%" not in said, said[:800]
        assert "when this was written (" in said, said[:800]
    page.emulate_media(color_scheme="dark")  # the gate plot on the dark theme, for a person
    page.goto(f"{retrained['prefect']}/v2/artifacts/artifact/{keys[f'{DEPLOYMENT}-gate-verdict']}")
    page.wait_for_selector("table", timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshots / "prefect-v2-gate-verdict-dark.png"), full_page=True)
    page.emulate_media(color_scheme="light")

    # Prefect's v2 UI always asks amplitude.com for its config (upstream, whatever the analytics
    # setting; offline it fails quietly): only our own page is held to "nothing from outside".
    outside.clear()
    page.goto(f"{retrained['endpoint']}/")
    page.wait_for_selector(".opblock-summary", timeout=60_000)
    assert page.title() == f"conveyor: {DEPLOYMENT} {DEPLOYMENT}:v1"
    assert page.locator(".opblock-summary-path", has_text="/generate").count() == 0
    page.locator(".opblock-summary", has_text="/classify").first.click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    status = page.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=60_000)
    page.screenshot(path=str(screenshots / "swagger-classify.png"), full_page=True)
    assert status.inner_text().strip().startswith("200"), status.inner_text()
    assert outside == [], outside
