"""Register a model folder as a new version: the one place a version is registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from conveyor.model_folder.errors import ArtifactError
from conveyor.model_folder.hashing import content_sha256
from conveyor.model_folder.manifest import read_manifest
from conveyor.recipe.schema import Recipe
from conveyor.registry.records import VersionRecord, VersionStatus
from conveyor.serving_spec import ServingSpec

__all__ = ["VersionRegistrar", "register_model_folder"]


class VersionRegistrar(Protocol):
    def register_version(
        self,
        deployment: str,
        *,
        task: str,
        base_model: str,
        recipe: dict[str, Any],
        data_fingerprint: str | None = ...,
        artifact_uri: str | None = ...,
        metrics: dict[str, Any] | None = ...,
        status: VersionStatus = ...,
        reason: str = ...,
        serving_spec: dict[str, Any] | None = ...,
        content_sha256: str | None = ...,
    ) -> VersionRecord: ...


def register_model_folder(
    registry: VersionRegistrar,
    folder: Path,
    *,
    recipe: Recipe,
    metrics: dict[str, Any],
    data_fingerprint: str | None,
    reason: str,
    status: VersionStatus = VersionStatus.TRAINED,
) -> VersionRecord:
    """A new version of the recipe's deployment for ``folder``, with its serving spec and the
    SHA-256 over every file of the folder (checked again whenever it is loaded to serve)."""
    kind = read_manifest(folder).kind  # refuses a folder that says nothing of its kind
    if kind.task != str(recipe.task):
        raise ArtifactError(f"{folder} holds a {kind} model, but {recipe.name} is {recipe.task}")
    return registry.register_version(
        recipe.name,
        task=str(recipe.task),
        base_model=recipe.model.base,
        recipe=recipe.model_dump(mode="json"),
        data_fingerprint=data_fingerprint,
        artifact_uri=str(folder),
        metrics=metrics,
        status=status,
        reason=reason,
        serving_spec=ServingSpec.from_recipe(recipe).as_record(),
        content_sha256=content_sha256(folder),
    )
