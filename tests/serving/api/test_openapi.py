"""The Swagger page and OpenAPI document say what the worker really does, and nothing else."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

import jsonschema
import pytest

from conveyor.registry import Registry
from conveyor.settings import Settings
from serving.api.openapi import ApiFacts, index_html, openapi_document
from testbed.live_server import running_server
from testbed.versions import DEPLOYMENT, make_version

CHINESE_EXAMPLE = "帮我定一个五分钟的计时器"
OPENAI_ROUTES = {"/v1/chat/completions", "/v1/completions"}
MODEL_ROUTES = {"/classify", "/v1/models"} | OPENAI_ROUTES
REFUSALS = {"400", "401", "403", "413", "415", "422", "429", "500", "503"}
OPENAI_REFUSALS = {"400", "401", "403", "404", "413", "415", "429", "500", "503"}


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": document["components"]}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("task", "routes"),
    [("classification", {"/classify"}), ("causal-lm", {"/v1/models"} | OPENAI_ROUTES)],
)
def test_only_the_routes_of_the_serving_task_are_documented(task: str, routes: set[str]) -> None:
    document = openapi_document(ApiFacts("intents", "intents:v3", task, max_texts=8))
    assert document["info"]["title"] == "conveyor: intents"
    assert document["info"]["version"] == "intents:v3"
    assert set(document["paths"]) & MODEL_ROUTES == routes
    for route in routes - {"/v1/models"}:
        operation = document["paths"][route]["post"]
        openai = route in OPENAI_ROUTES
        refusals = OPENAI_REFUSALS if openai else REFUSALS
        error = "#/components/schemas/" + ("OpenAIError" if openai else "Error")
        assert set(operation["responses"]) == {"200", *refusals}
        body = operation["requestBody"]["content"]["application/json"]
        assert [e["summary"] for e in body["examples"].values()] == ["English", "中文 (Chinese)"]
        for example in body["examples"].values():
            jsonschema.validate(example["value"], _schema(document, body["schema"]))
        for status in refusals:
            answer = operation["responses"][status]
            assert "X-Model-Version" in answer["headers"]
            example = answer["content"]["application/json"]["example"]
            jsonschema.validate(example, _schema(document, {"$ref": error}))


def _property(schema: dict[str, Any], name: str, key: str) -> Any:
    """``key`` of property ``name``, from its non-null branch."""
    field = schema["properties"][name]
    return next(b[key] for b in field.get("anyOf", [field]) if key in b)


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_each_documented_bound_is_the_one_the_server_enforces(kind: Any) -> None:
    """At a bound the document states, the parser (and the version's budget) accepts; just
    over it, it refuses naming that field."""
    from serving.api.openai.protocol import ApiError, parse_request
    from serving.api.openai.serving import check_budget

    document = openapi_document(ApiFacts("chat", "chat:v1", "causal-lm", max_new_tokens=16))
    route = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
    body = document["paths"][route]["post"]["requestBody"]["content"]["application/json"]
    schema = _schema(document, body["schema"])
    good = body["examples"]["english"]["value"]
    over = {
        "temperature": _property(schema, "temperature", "maximum") + 0.01,
        "top_p": _property(schema, "top_p", "maximum") + 0.01,
        "stop": ["x"] * (_property(schema, "stop", "maxItems") + 1),
    }
    jsonschema.validate(good, schema)
    for name, value in over.items():
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(good | {name: value}, schema)
        with pytest.raises(ApiError) as refused:
            parse_request(kind, good | {name: value})
        assert refused.value.field == name
    top = _property(schema, "max_tokens", "maximum")
    assert top == 16
    at = parse_request(kind, good | {"max_tokens": top})
    assert check_budget(at, 5, cap=16, context=512) == top
    with pytest.raises(ApiError) as capped:
        check_budget(parse_request(kind, good | {"max_tokens": top + 1}), 5, cap=16, context=512)
    assert capped.value.field == "max_tokens"
    for bad in (good | {"n": 2}, good | {"colour": "red"}, {"model": "chat"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(ApiError):
            parse_request(kind, bad)


@pytest.mark.unit
def test_the_request_schema_refuses_what_the_edge_refuses() -> None:
    document = openapi_document(ApiFacts("intents", "intents:v3", "classification", max_texts=2))
    request = document["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]
    schema = _schema(document, request["schema"])
    for bad in ({}, {"text": "a", "texts": ["b"]}, {"texts": ["a", "b", "c"]}, {"text": "  "},
                {"text": "a", "top_k": 0}, {"text": "a", "colour": "red"}):  # fmt: skip
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.unit
def test_no_model_yet_documents_no_model_route_and_the_page_loads_nothing_from_outside() -> None:
    document = openapi_document(ApiFacts("intents", None, None))
    assert not set(document["paths"]) & MODEL_ROUTES
    assert document["info"]["version"] == "none"
    page = index_html("conveyor: intents intents:v3")
    assert "<title>conveyor: intents intents:v3</title>" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def _post(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, Any, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/classify", body=body, headers={"content-type": content_type})
    response = conn.getresponse()
    data = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, json.loads(data) if data else None, headers


@pytest.mark.integration
def test_a_real_worker_documents_itself_truly_and_every_refusal_names_the_version(
    registry: Registry, settings: Settings, tokenizer: Any
) -> None:
    import hypothesis
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from serving.control.rollout import promote

    version = make_version(registry, settings, tokenizer, 0)
    promote(registry, version, canary_percent=0, timeout=5)
    with running_server(settings) as server:
        port = server.port
        status, headers, page = _get(port, "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        html = page.decode()
        assert f"<title>conveyor: {DEPLOYMENT} {version}</title>" in html
        assert "googletagmanager" not in html and not re.search(r"(src|href)=\"(https?:)?//", html)
        for undeclared in ("/v1/docs", "/v1/redoc", "/v1/openapi.json"):  # FastAPI's own pages
            assert _get(port, undeclared)[0] == 404, undeclared
        status, _, raw = _get(port, "/docs.json")
        document = json.loads(raw)
        assert CHINESE_EXAMPLE.encode() in raw  # UTF-8 as it is, not \u escapes
        assert document["info"] == document["info"] | {"title": f"conveyor: {DEPLOYMENT}"}
        assert document["info"]["version"] == version
        assert set(document["paths"]) & MODEL_ROUTES == {"/classify"}

        operation = document["paths"]["/classify"]["post"]
        named = operation["requestBody"]["content"]["application/json"]["examples"]
        assert named["chinese"]["value"]["text"] == CHINESE_EXAMPLE
        for example in named.values():  # each one answers
            status, answer, headers = _post(port, json.dumps(example["value"]).encode())
            assert status == 200 and headers["x-model-version"] == version == answer["version"]
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        jsonschema.validate(answer, _schema(document, ok))

        refusals = [
            (b'{"text": "hi", "top_k": null}', "application/json", 422, "top_k"),
            (b'{"text": "\\ud800"}', "application/json", 422, "text"),
            (b'{"texts": ["ok", "\\udfff"]}', "application/json", 422, "texts[1]"),
            (b'{"text": true}', "application/json", 422, "text"),
            (b"{not json", "application/json", 400, "body"),
            (b"text=hi", "text/plain", 415, None),
            (b'{"text": "' + b"x" * 1_000_001 + b'"}', "application/json", 413, "body"),
        ]
        for body, content_type, want, field in refusals:
            status, answer, headers = _post(port, body, content_type)
            assert (status, answer.get("field")) == (want, field), (body[:40], answer)
            assert headers["x-model-version"] == version, (body[:40], headers)
            assert str(status) in operation["responses"]
            jsonschema.validate(answer, _schema(document, {"$ref": "#/components/schemas/Error"}))
        status, headers, raw = _get(port, "/classify")
        assert status == 405 and headers["x-model-version"] == version
        assert set(json.loads(raw)) == {"error"}
        assert "Traceback" not in server.log.read_text()

        schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/docs.json")
        checks = [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ]
        seen: list[int] = []
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=30,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            @hypothesis.given(case=schema["/classify"]["POST"].as_strategy(generation_mode=mode))
            def answers_as_documented(case: Any) -> None:
                response = case.call(base_url=f"http://127.0.0.1:{port}", timeout=30)
                seen.append(response.status_code)
                case.validate_response(response, checks=checks)

            answers_as_documented()
        assert 200 in seen and 422 in seen, sorted(set(seen))


@pytest.mark.unit
def test_the_description_and_the_503_example_say_what_this_worker_does() -> None:
    classifier = openapi_document(ApiFacts("intents", "intents:v3", "classification"))
    generator = openapi_document(ApiFacts("chat", "chat:v1", "causal-lm"))
    assert "/v1" not in classifier["info"]["description"]
    assert "/v1" in generator["info"]["description"]
    example = classifier["paths"]["/classify"]["post"]["responses"]["503"]
    said = json.dumps(example)
    assert f"overloaded: {Settings().serve_max_in_flight} requests in flight" in said
