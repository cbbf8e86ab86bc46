"""The OpenAI-compatible API, in vLLM's shape: ``protocol`` (the request models, which also
give the OpenAPI document its request schemas), ``serving`` (the handler), ``responses`` (the
answers' shapes) and ``api_router`` (the routes); ``openapi`` documents them."""
