"""The BentoML model-store tag of a version."""

from __future__ import annotations

from pathlib import Path

__all__ = ["bento_model_tag"]


def bento_model_tag(version: str, artifact_uri: str | None) -> str:
    """``deployment:vN-<folder hash>``: a registry rebuilt from scratch reuses ``vN``, and the
    model store must then never hand back another model under the same name."""
    content = Path(artifact_uri).name[:16] if artifact_uri else "none"
    return f"{version.replace('@', '-')}-{content}"
