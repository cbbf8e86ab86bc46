"""Model FLOPs utilisation: the training FLOPs of a BERT sample and a device's dense bf16 peak.

PaLM's accounting (appendix B): 6 FLOPs per non-embedding parameter per token, plus attention.
"""

from __future__ import annotations

from typing import Any

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by a part of the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}


def peak_flops(override: float | None) -> float | None:
    """The device's dense bf16 peak in FLOP/s (``override`` in TFLOP/s wins), if known."""
    import torch

    if override:
        return override * 1e12
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    found = [tflops for part, tflops in PEAK_BF16_TFLOPS.items() if part in name]
    return found[0] * 1e12 if found else None


def bert_flops_per_sample(config: Any, seq: int) -> float:
    """Training FLOPs of one sample: 6 per non-embedding parameter per token, plus attention
    (12 x layers x hidden x seq per token; PaLM's accounting, appendix B)."""
    d, layers = config.hidden_size, config.num_hidden_layers
    per_layer = 4 * d * d + 2 * d * config.intermediate_size  # attention and MLP matrices
    non_embedding = layers * per_layer + d * d  # + pooler
    return float(seq * (6 * non_embedding + 12 * layers * d * seq))


def model_flops_utilisation(
    samples_s: float | None, flops: float, peak: float | None
) -> float | None:
    """The share of ``peak`` that ``samples_s`` samples of ``flops`` each per second use."""
    return samples_s * flops / peak if samples_s and peak else None
