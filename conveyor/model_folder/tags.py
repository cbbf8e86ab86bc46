"""The BentoML model-store tag of a version."""

from __future__ import annotations

from pathlib import Path

__all__ = ["bento_model_tag"]


def bento_model_tag(
    version: str, artifact_uri: str | None, content_sha256: str | None = None
) -> str:
    """``deployment:vN-<content>``: a registry rebuilt from scratch reuses ``vN``, and the
    model store must then never hand back another model under the same name.

    ``<content>`` is the start of the folder's registered SHA-256 (any changed file, the
    recipe included, gives another tag); rows older than the hash use the folder's name.
    """
    if content_sha256:
        content = content_sha256[:16]
    else:
        content = Path(artifact_uri).name[:16] if artifact_uri else "none"
    return f"{version.replace('@', '-')}-{content}"
