"""The drift monitor's view of a version from the capture: the real prompts it was asked.

When a version's ``serving.capture`` is on, the monitor profiles what was captured in the
last hour and more (the same window the workers' own profiles cover) instead of the
heartbeats' counts: a language model's drift is judged on its real prompts, each profiled
as the worker profiles it (chat turns one per line, tokens of the version's own tokenizer).
The captured texts are the redacted ones, cut to ``max_text_chars``: lengths past the cut
count in the last bins. Answered requests only (status 200), as the workers profile them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from conveyor.capture_sink import is_postgres
from conveyor.registry import VersionRecord
from conveyor.serving_spec import serving_spec_of
from serving.control.traffic import TrafficQuery, capture_connection, execute
from serving.worker.profile import InputProfile, profile_of

__all__ = ["CAPTURE_WINDOW", "capture_profile", "prompt_text"]

CAPTURE_WINDOW = timedelta(hours=1)  # as serving.worker.controller.PROFILE_WINDOW_SECONDS
_ROWS = """
SELECT endpoint, request, answer, score FROM traffic
WHERE status = 200 AND request IS NOT NULL
"""


def prompt_text(endpoint: str, request: str) -> str:
    """A captured request as the drift monitor profiles it (the OpenAI routes' prompt_text:
    a chat's turns one per line)."""
    if endpoint == "chat":
        return "\n".join(str(m.get("content", "")) for m in json.loads(request))
    return request


def _tokenizer(record: VersionRecord) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(record.artifact_uri))


def capture_profile(
    home: Path, record: VersionRecord, window: timedelta = CAPTURE_WINDOW
) -> InputProfile:
    """The profile of the requests ``record`` answered in the capture over ``window``."""
    sink = serving_spec_of(record).capture.sink
    sinks = (sink,) if is_postgres(sink) else ()
    query = TrafficQuery(record.deployment, version=record.version, since=window, sinks=sinks)
    with capture_connection(home, query) as con:
        _, rows = execute(con, _ROWS, "monitor", checked=True)
    if not rows:
        return InputProfile()
    texts = [prompt_text(endpoint, request) for endpoint, request, _, _ in rows]
    results = [
        {"label": answer, "score": score} if endpoint == "classify" else {"label": None}
        for endpoint, _, answer, score in rows
    ]
    tokenizer = _tokenizer(record)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return profile_of(texts, results, ids, getattr(tokenizer, "unk_token_id", None))
