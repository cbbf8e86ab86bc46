"""The HTTP API of a worker: the Bento service (``service``), the ASGI edge that admits a
request before any model work (``edge``), the OpenAI-compatible API (``openai``: its
``protocol``, ``serving`` handler, ``responses`` and ``api_router``), the OpenAPI page
(``openapi``, with ``openapi_parts``). The only room that knows status codes:
``validation.status_of`` turns every room's refusal into one.

Named ``api``, not ``http``: BentoML puts a service's folder on the import path, where a
package named ``http`` would hide the standard library's.
"""
