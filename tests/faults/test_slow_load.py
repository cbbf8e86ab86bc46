"""A candidate that takes longer to load than the liveness window (issue 13, item 3).

Heartbeats used to come only from the controller thread, which is busy while it loads; a
worker counted as live for ``LIVE_SECONDS`` after its last one, so during a long load it
dropped out, and a promotion saw "every live worker (none) serves it" and reported success
with nothing serving. Here the candidate's tokenizer has two million extra entries (a real
artifact that takes seconds to load, as a language model does); the promotion must return
only once the worker really serves it, while the old version answers every request.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor.registry import Registry, RolloutState
from conveyor.settings import Settings
from serving.canary.bake import LIVE_SECONDS
from serving.control.rollout import promote
from testbed.fault_table import FaultTable
from testbed.live_server import running_server
from testbed.traffic import Traffic
from testbed.versions import make_version

pytestmark = [pytest.mark.integration, pytest.mark.faults]
# About 6 s to load in a worker on 2 shared cores. The Rust tokenizer parses its file holding
# the GIL, so the worker answers nothing meanwhile (max_wait_s in the row): bigger would time
# clients out. Loading beside serving without stalling it needs the load in another process.
EXTRA_TOKENS = 1_500_000


class _TokenizerFiles:
    """Tokenizer files ready on disk; ``write_model_folder`` only calls ``save_pretrained``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save_pretrained(self, target: str | Path) -> None:
        for path in self.folder.iterdir():
            shutil.copy(path, Path(target) / path.name)


def _slow_tokenizer(tokenizer: Any, folder: Path) -> _TokenizerFiles:
    """The tokenizer with EXTRA_TOKENS entries no text produces (the old ids unchanged)."""
    tokenizer.save_pretrained(folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    first = len(vocab)
    vocab.update({f"\u2603{i}\u2603": first + i for i in range(EXTRA_TOKENS)})
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    (folder / "vocab.txt").unlink(missing_ok=True)
    return _TokenizerFiles(folder)


def test_a_slow_loading_candidate_is_waited_for_and_the_old_one_serves_meanwhile(
    registry: Registry,
    settings: Settings,
    tokenizer: Any,
    fault_table: FaultTable,
    tmp_path: Path,
) -> None:
    v1 = make_version(registry, settings, tokenizer, 0)
    promote(registry, v1, canary_percent=0, timeout=5)
    slow = make_version(
        registry, settings, _slow_tokenizer(tokenizer, tmp_path / "tok"), 1,
        vocab=tokenizer.vocab_size,
    )  # fmt: skip
    with running_server(settings) as server, Traffic(server.port, clients=4) as traffic:
        time.sleep(1.0)
        start = time.monotonic()
        outcome = promote(registry, slow, canary_percent=0, timeout=90)
        end = time.monotonic()
        time.sleep(0.5)
        loaded = {row["version"]: row for row in server.status()["loaded"]}
    load_seconds = loaded[slow]["load_seconds"]
    assert load_seconds > LIVE_SECONDS, f"the load took {load_seconds} s: make the model slower"
    assert outcome.rollout.state == RolloutState.COMPLETED
    assert len(outcome.workers) == 1, "promote returned before the worker served it"
    during = traffic.between(start, end)
    row = fault_table.add(
        "slow-loading candidate",
        f"promote a candidate whose load takes {load_seconds:.1f} s (window {LIVE_SECONDS:g} s)",
        during,
        max_wait_s=round(max(a.seconds for a in during), 2),
    )
    assert row["lost"] == 0 and row["ok"] == row["sent"] > 0
    assert {a.version for a in during if a.sent_at + a.seconds < end - 0.5} >= {v1}
