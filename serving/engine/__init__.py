"""The model engines: classification on PyTorch or ONNX Runtime (``inference``,
``onnx_backend``, the adaptive ``batcher``), the decode engine for language models
(``decoding``, the scheduler loop, with its KV batch, sampling and text pieces; ``params``, a
request's terms; ``limits``, the sampling bounds and the model's context rule, read by every
room) and LoRA adapters on a shared base (``adapters``); a GGUF version decodes in
llama.cpp (``llamacpp_engine``, the same face as ``decoding``). Engines refuse what they cannot run
with ``serving.refusal`` kinds."""
