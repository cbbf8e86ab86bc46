"""Serving, in five rooms (see docs/design.md, "serving"):

- ``serving.api``: the Bento service, the ASGI edge, the OpenAI routes and the OpenAPI page;
  the only room that speaks HTTP status codes.
- ``serving.worker``: one worker's state: the live controller (load, warm, verify, swap),
  keys and limits, the prediction cache, traffic profiles.
- ``serving.engine``: the model engines: classification (PyTorch, ONNX Runtime, the batcher),
  the decode engine for language models, LoRA adapters.
- ``serving.canary``: the canary's judgement: per-version figures, evidence, the bake verdict.
- ``serving.control``: the operator's side: promotion and rollback, status, packaging into
  BentoML, the ``bentoml serve`` process, the drift monitor.

``api`` and ``control`` sit above ``worker``, which sits above ``engine`` and ``canary``
(import-linter checks it); ``serving.refusal`` is the one module every room shares, and
``serving.bento_pin`` the one packaging (``control``) and the service (``api``) share.
Heavy modules (BentoML, torch) are imported where used.
"""
