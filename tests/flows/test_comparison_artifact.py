"""`conveyor traffic compare --artifact`: the side-by-side table on a real Prefect server."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_the_comparison_reaches_a_real_prefect_server_as_artifacts() -> None:
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.testing.utilities import prefect_test_harness

    from flows.artifacts import publish_comparison

    rows = [{"request": "wire money", "answer_a": "transfer", "answer_b": "translate",
             "same": False, "seen": 2}]  # fmt: skip
    with prefect_test_harness(server_startup_timeout=120):
        key = publish_comparison("intents", "1 of 2 differ", "intents:v1", "intents:v2", rows)
        with get_client(sync_client=True) as client:
            keys = [key, f"{key}-summary"]
            found = client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
            )
    by_key = {a.key: a for a in found}
    table = by_key[key].data
    table = json.loads(table) if isinstance(table, str) else table
    assert table == [{"input": "wire money", "intents:v1": "transfer", "intents:v2": "translate",
                      "agree": "differs", "asked": "2"}]  # fmt: skip
    assert "1 of 2 differ" in str(by_key[f"{key}-summary"].data)
