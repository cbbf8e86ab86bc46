"""The model engines: classification on PyTorch or ONNX Runtime (``inference``,
``onnx_backend``, the adaptive ``batcher``), the decode engine for language models
(``decoding`` with its KV batch, sampling and text pieces) and LoRA adapters on a shared base
(``adapters``). Engines refuse what they cannot run with ``serving.refusal`` kinds."""
