"""Routing a request to one of the deployments a worker serves: by the OpenAI ``model`` (a
deployment or one of its versions), by the ``X-Conveyor-Deployment`` header for /classify;
a deployment not served here is a 404 naming what is."""

from __future__ import annotations

from typing import Any, cast

import pytest

from serving.api.openai.responses import error_body
from serving.api.validation import status_of
from serving.refusal import Refusal
from serving.worker.fleet import Fleet
from serving.worker.runtime import Runtime

A, B = cast(Runtime, object()), cast(Runtime, object())
FLEET = Fleet({"lora-a": A, "lora-b": B})


def _refused(path: str, headers: dict[str, str], body: Any) -> Refusal:
    with pytest.raises(Refusal) as refused:
        FLEET.route(path, headers, body)
    return refused.value


def test_the_model_field_picks_the_deployment_or_its_pinned_version() -> None:
    chat = "/v1/chat/completions"
    assert FLEET.route(chat, {}, {"model": "lora-b"}) is B
    assert FLEET.route(chat, {}, {"model": "lora-a:v3"}) is A
    assert FLEET.route(chat, {}, None) is A  # no model: the handler says what is missing
    assert FLEET.route("/classify", {"x-conveyor-deployment": "lora-b"}, None) is B


def test_a_deployment_not_served_here_is_a_404_in_openais_shape() -> None:
    refused = _refused("/v1/completions", {}, {"model": "lora-z"})
    assert status_of(refused) == 404
    error = error_body(refused)["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "'lora-z'" in error["message"] and "'lora-a', 'lora-b'" in error["message"]
    assert status_of(_refused("/classify", {"x-conveyor-deployment": "lora-z"}, None)) == 404


def test_classify_on_a_server_of_many_must_name_its_deployment() -> None:
    refused = _refused("/classify", {}, {"text": "hi"})
    assert status_of(refused) == 400 and refused.field == "x-conveyor-deployment"


def test_one_deployment_is_not_many() -> None:
    assert not Fleet({"lora-a": A}).many and FLEET.many
    assert Fleet({"lora-a": A}).current() is A
