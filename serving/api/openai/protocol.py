"""The OpenAI-compatible request bodies as pydantic models: one home for their shape.

The same models parse a request (:func:`parse_request`), produce the request schemas of the
OpenAPI document (:func:`request_schema`) and turn a request into the engine's
:class:`~serving.engine.params.SamplingParams` (:meth:`LlmRequest.params`). Their sampling
bounds are the engine's own (:mod:`serving.engine.limits`). A body that does not fit is
:class:`ApiError` (400) naming the field, OpenAI's ``param``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.api.validation import RequestError
from serving.engine.limits import (
    GREEDY_BELOW,
    MAX_SEED,
    MAX_TEMPERATURE,
    MAX_TOP_P,
    MIN_MAX_TOKENS,
    MIN_SEED,
    MIN_TEMPERATURE,
    TOP_P_ABOVE,
)
from serving.engine.params import SamplingParams

__all__ = [
    "MAX_STOP",
    "ApiError",
    "ChatCompletionRequest",
    "CompletionRequest",
    "Kind",
    "LlmRequest",
    "parse_request",
    "request_schema",
]

Kind = Literal["chat", "completion"]
MAX_STOP = 4
COMPONENTS = "#/components/schemas/"
ROLES = ("system", "developer", "user", "assistant")
Text = Annotated[str, Field(min_length=1)]
MAX_MESSAGES = 1024  # turns in one chat request
Tokens = Annotated[int, Field(ge=MIN_MAX_TOKENS)]


class ApiError(RequestError):
    """A refusal in OpenAI's terms: ``param`` is the field at fault (RequestError's ``field``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, field=param, retry_after=retry_after, code=code)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StreamOptions(_Body):
    include_usage: bool | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One turn; other keys (``name``) are ignored. ``developer`` is read as ``system``."""

    model_config = ConfigDict(strict=True, frozen=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class _Sampling(_Body):
    """The fields both routes take; None is "left out" (OpenAI's default)."""

    model: Text = Field(
        description="The deployment (the canary split decides the version), or a version "
        "this worker holds to pin it (GET /v1/models)"
    )
    max_tokens: Tokens | None = Field(None, description="At most the version's limit")
    temperature: float | None = Field(
        None,
        ge=MIN_TEMPERATURE,
        le=MAX_TEMPERATURE,
        allow_inf_nan=False,
        description=f"0 (or below {GREEDY_BELOW:g}) is greedy; 1 if left out",
    )
    top_p: float | None = Field(
        None, gt=TOP_P_ABOVE, le=MAX_TOP_P, allow_inf_nan=False, description="1 if left out"
    )
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOP)] | None = None
    seed: int | None = Field(
        None, ge=MIN_SEED, le=MAX_SEED, description="The same seed, the same sample"
    )
    stream: bool | None = None
    stream_options: StreamOptions | None = Field(None, description="Only with `stream: true`")
    n: Literal[1] | None = Field(None, description="One choice per request")
    user: str | None = None
    presence_penalty: Literal[0] | None = Field(None, description="Not supported: 0 only")
    frequency_penalty: Literal[0] | None = Field(None, description="Not supported: 0 only")

    def common(self) -> dict[str, Any]:
        """The normalized sampling fields of :class:`LlmRequest`."""
        if self.stream_options is not None and not self.stream:
            raise _bad("'stream_options' is only allowed when 'stream' is true", "stream_options")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return {
            "model": self.model,
            "temperature": 1.0 if self.temperature is None else self.temperature,
            "top_p": 1.0 if self.top_p is None else self.top_p,
            "seed": self.seed,
            "stop": stop,
            "stream": bool(self.stream),
            "include_usage": bool(self.stream_options and self.stream_options.include_usage),
        }


class ChatCompletionRequest(_Sampling):
    """The body of POST /v1/chat/completions."""

    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    max_completion_tokens: Tokens | None = Field(None, description="max_tokens, by its new name")
    logprobs: Literal[False] | None = Field(None, description="Not supported: false only")

    def request(self) -> LlmRequest:
        turns = tuple(
            ("system" if m.role == "developer" else m.role, m.text()) for m in self.messages
        )
        asked = self.max_completion_tokens
        return LlmRequest(
            "chat",
            messages=turns,
            max_tokens=asked if asked is not None else self.max_tokens,
            **self.common(),
        )


class CompletionRequest(_Sampling):
    """The body of POST /v1/completions."""

    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=1)]
    logprobs: Literal[0] | None = Field(None, description="Not supported: 0 only")
    echo: Literal[False] | None = Field(None, description="Not supported: false only")

    def request(self) -> LlmRequest:
        prompt = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        return LlmRequest("completion", prompt=prompt, max_tokens=self.max_tokens, **self.common())


MODELS: dict[Kind, type[ChatCompletionRequest] | type[CompletionRequest]] = {
    "chat": ChatCompletionRequest,
    "completion": CompletionRequest,
}


@dataclass(frozen=True)
class LlmRequest:
    """One validated request, normalized; ``max_tokens`` None means "as many as the limits
    allow"."""

    kind: Kind
    model: str
    messages: tuple[tuple[str, str], ...] = ()
    prompt: str = ""
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def prompt_text(self) -> str:
        """What the client asked, as the drift monitor profiles it (the training data's
        prompts are profiled the same way: the turns' texts, one per line)."""
        if self.kind == "chat":
            return "\n".join(text for _role, text in self.messages)
        return self.prompt

    def params(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_tokens, self.temperature, self.top_p, self.seed, self.stop)


def _bad(message: str, param: str, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


_SAYS = {  # what a field that does not fit must be, for the fields a bare pydantic message
    # would not explain (unions, the fields this server does not support)
    "model": "'model' is required: the deployment name (GET /v1/models)",
    "messages": "'messages' must be a non-empty list of {role, content} objects: role one of "
    f"{', '.join(ROLES)}; content a string or a list of text parts",
    "prompt": "'prompt' must be a non-empty string (or a list of one string)",
    "stop": f"'stop' must be a string or a list of at most {MAX_STOP} non-empty strings",
    "stream": "'stream' must be true or false",
    "stream_options": "'stream_options' takes only 'include_usage' (true or false)",
    "n": "this server returns one choice per request; send n=1 or leave it",
    "presence_penalty": "'presence_penalty' is not supported here; leave it out or send 0",
    "frequency_penalty": "'frequency_penalty' is not supported here; leave it out or send 0",
    "logprobs": "'logprobs' is not supported here; leave it out",
    "echo": "'echo' is not supported here; leave it out",
}


def _refusal(error: ValidationError) -> ApiError:
    first = error.errors()[0]
    loc = first["loc"]
    if not loc:
        return _bad("the body must be a JSON object", "body")
    name = str(loc[0])
    if first["type"] == "extra_forbidden":
        return _bad(f"Unrecognized request argument supplied: {name}", name)
    if name in _SAYS:
        at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:3])
        where = f" (at {name}{at})" if name == "messages" and at else ""
        return _bad(_SAYS[name] + where, name)
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return _bad(f"'{name}': {first['msg']}, not {shown}", name)


def parse_request(kind: Kind, data: Any) -> LlmRequest:
    """A validated request, or ApiError (400) naming the field at fault."""
    if not isinstance(data, dict):
        raise _bad("the body must be a JSON object", "body")
    try:
        body = MODELS[kind].model_validate(data)
    except ValidationError as exc:
        raise _refusal(exc) from None
    request = body.request()
    _check_unicode(request)
    return request


def _check_unicode(request: LlmRequest) -> None:
    """Every text encodes as UTF-8: a lone surrogate (valid JSON, ``"\\ud800"``) is refused
    here, not found by the tokenizer or the response writer."""
    texts = [("messages", text) for _role, text in request.messages]
    texts += [("prompt", request.prompt)] + [("stop", stop) for stop in request.stop]
    for name, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad(f"'{name}' is not valid Unicode text (a lone surrogate)", name) from None


def request_schema(kind: Kind, max_new_tokens: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of ``kind``'s body (OpenAPI 3.1) with the serving version's
    ``serving.max_new_tokens`` as the bound on the tokens it may ask for, and the schemas it
    refers to (for the document's ``components``)."""
    schema = MODELS[kind].model_json_schema(ref_template=f"{COMPONENTS}{{model}}")
    definitions = schema.pop("$defs", {})
    for name in ("max_tokens", "max_completion_tokens"):
        field = schema["properties"].get(name)
        if field is None:
            continue
        for branch in field.get("anyOf", [field]):
            if branch.get("type") == "integer":
                branch["maximum"] = max_new_tokens
        field["description"] = f"At most {max_new_tokens} (the version's serving.max_new_tokens)"
    return schema, definitions
