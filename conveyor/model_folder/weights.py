"""Pretrained weights read into the process's own memory, never mapped from their files.

transformers maps safetensors files into memory and serves the weights straight from the
mapping. A worker would then read its model from the registry's files for as long as it
runs: a file rewritten in place changes the model it verified at load (its hash no longer
says what it serves), and one truncated while it is mapped kills the worker with SIGBUS on
its next forward pass. Read whole, a loaded version is the one whose hash was checked,
whatever later happens on disk. The price is memory: workers no longer share one copy of
the weights through the page cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_pretrained_in_memory"]


def load_pretrained_in_memory(auto_class: Any, folder: Path | str, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained`` on a local safetensors folder, the files read whole."""
    return auto_class.from_pretrained(
        str(folder), local_files_only=True, use_safetensors=True, disable_mmap=True, **kwargs
    )
