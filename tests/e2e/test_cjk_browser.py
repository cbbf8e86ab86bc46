"""Chinese labels as a person sees them: a gate verdict over Chinese classes (its plot inline)
published as a Prefect markdown artifact on a real Prefect server, opened in headless Debian
``chromium`` and screenshotted into ``CONVEYOR_SCREENSHOTS``.

Tofu is told from glyphs by the font that drew them: Chromium names, per text node, the
platform fonts it used and how many glyphs each drew (DevTools' ``CSS.getPlatformFontsForNode``).
Each Chinese label must be drawn wholly by a font that fontconfig says covers Chinese. The
same page in a browser whose fontconfig sees only DejaVu draws them with DejaVu (empty boxes),
which the same check refuses: it does tell the two apart. The plot's own glyphs are matplotlib's
(``tests/gates/test_cjk_plot.py`` refuses a missing glyph); here it must load and show.
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

from conveyor.ports import free_port
from conveyor.settings import Settings
from flows.server import ensure_prefect_server, stop_prefect_server
from gates.text.plot import write_plot
from gates.text.report import markdown_report, top_confusions
from gates.verdict import Evaluation, GateCheck, Verdict
from testbed.paths import CHROMIUM, REPO_ROOT

pytestmark = pytest.mark.e2e

CLASSES = ["体育", "科学/技术", "旅游", "娱乐", "政治"]
DEPLOYMENT = "sib-zh"
PUBLISH = (
    "import json, sys\n"
    "from flows.artifacts import publish_gate_verdict\n"
    "publish_gate_verdict(sys.argv[1], json.loads(open(sys.argv[2], encoding='utf-8').read()))\n"
)
# The innermost element holding the text (a table cell, a heading).
FIND = """(needle) => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    if (walker.currentNode.data.includes(needle)) return walker.currentNode.parentElement;
  }
  return null;
}"""
DEJAVU_ONLY = """<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>/usr/share/fonts/truetype/dejavu</dir><cachedir>{cache}</cachedir></fontconfig>
"""


def _cjk_families() -> set[str]:
    listed = subprocess.run(
        ["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=True
    ).stdout
    return {name.strip() for line in listed.splitlines() for name in line.split(",")}


def _verdict_json(tmp_path: Path) -> Path:
    def evaluation(version: str, scores: list[float]) -> Evaluation:
        f1 = dict(zip(CLASSES, scores, strict=True))
        return Evaluation(version, "classification", per_class_f1=f1)

    candidate = evaluation("sib-zh:v2", [0.9, 0.4, 0.7, 0.5, 0.8])
    champion = evaluation("sib-zh:v1", [0.8, 0.5, 0.6, 0.6, 0.7])
    confusions = top_confusions(CLASSES, [[5, 1, 0, 0, 0], [2, 3, 0, 0, 0]] + [[0] * 5] * 3)
    plot = write_plot(tmp_path / "per_class_f1.png", candidate, champion, confusions)
    assert plot is not None
    check = GateCheck("min_accuracy", 0.88, 0.75, ">=", "pass", "accuracy 0.8800 >= 0.75")
    verdict = Verdict("sib-zh:v2", "sib-zh:v1", True, "pass", [check], "accuracy")
    report = markdown_report(
        verdict, candidate, champion, test_path="test.jsonl", test_size=204,
        plot_name=plot.name, confusions=confusions,
    )  # fmt: skip
    body = {"report": report, "plot_path": str(plot), "candidate": "sib-zh:v2", "checks": []}
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def artifact_url(tmp_path: Path, conveyor_home: Path) -> Iterator[str]:
    """The Prefect UI's page of a gate verdict over Chinese classes, on a real server."""
    settings = Settings()
    prefect = ensure_prefect_server(settings, free_port())
    try:
        env = {**os.environ, "PREFECT_API_URL": prefect.api_url}
        published = subprocess.run(
            [sys.executable, "-c", PUBLISH, DEPLOYMENT, str(_verdict_json(tmp_path))],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr[-3000:]
        request = urllib.request.Request(
            f"{prefect.api_url}/artifacts/filter",
            data=json.dumps({"limit": 50}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            keys = {a["key"]: a["id"] for a in json.loads(response.read()) if a.get("key")}
        yield f"{prefect.url}/v2/artifacts/artifact/{keys[f'{DEPLOYMENT}-gate-verdict']}"
    finally:
        stop_prefect_server(settings)


def _fonts(page: Any, text: str) -> list[dict[str, Any]]:
    """The platform fonts Chromium drew ``text``'s element with, and each one's glyph count."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    cdp.send("DOM.getDocument", {"depth": -1})
    found = cdp.send("Runtime.evaluate", {"expression": f"({FIND})({json.dumps(text)})"})
    assert "objectId" in found["result"], f"{text!r} is not on the page"
    node = cdp.send("DOM.requestNode", {"objectId": found["result"]["objectId"]})
    return list(cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})["fonts"])


def _drawn_in_cjk(label: str, fonts: list[dict[str, Any]], families: set[str]) -> bool:
    """Each Chinese character of ``label`` drawn by a font that covers Chinese (a Latin font
    draws the ``/``; tofu would be the Latin font's empty box instead)."""
    han = sum(1 for ch in label if "\u4e00" <= ch <= "\u9fff")
    return sum(f["glyphCount"] for f in fonts if f["familyName"] in families) >= han


def _open(browser: Any, url: str, shot: Path) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(url)
    page.wait_for_selector(f"text={CLASSES[0]}", timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shot), full_page=True)
    return page


def test_chinese_class_names_in_a_prefect_artifact_are_drawn_not_boxes(
    artifact_url: str, browser: Any, screenshots: Path, tmp_path: Path
) -> None:
    families = _cjk_families()
    assert families, "no CJK font installed: apt-get install fonts-wqy-microhei (.ci/run does)"
    page = _open(browser, artifact_url, screenshots / "prefect-v2-gate-verdict-zh.png")
    for label in CLASSES:
        fonts = _fonts(page, label)
        assert _drawn_in_cjk(label, fonts, families), (label, fonts)
    plots = page.evaluate(
        "() => [...document.images].filter(i => i.src.startsWith('data:image/png'))"
        ".map(i => i.complete && i.naturalWidth > 0)"
    )
    assert plots == [True], plots  # the inline plot, decoded

    config = tmp_path / "fonts.conf"
    config.write_text(DEJAVU_ONLY.format(cache=tmp_path / "fc-cache"))
    fontless = browser.browser_type.launch(
        executable_path=str(CHROMIUM), headless=True,
        env={**os.environ, "FONTCONFIG_FILE": str(config)},
    )  # fmt: skip
    try:
        boxes = _open(fontless, artifact_url, screenshots / "prefect-v2-gate-verdict-zh-tofu.png")
        fonts = _fonts(boxes, CLASSES[0])
        assert not _drawn_in_cjk(CLASSES[0], fonts, families), fonts  # it sees the boxes
    finally:
        fontless.close()
