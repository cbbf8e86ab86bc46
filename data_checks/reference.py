"""The reference for drift: the data profile of the version serving a deployment now."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.chat import read_chat_split
from conveyor.errors import NotFoundError
from conveyor.registry import Registry, VersionRecord
from conveyor.splits import DataError, read_split
from data_checks.stats import PROFILE_KEY, chat_profile, data_profile

__all__ = ["Reference", "find_reference", "profile_of_version"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """A version and the profile of the data it was trained on; ``source`` says where from."""

    version: str
    profile: dict[str, Any]
    source: str


def profile_of_version(record: VersionRecord) -> Reference | None:
    """The stored profile, else one computed from the train split its recipe names."""
    stored = record.metrics.get(PROFILE_KEY)
    if isinstance(stored, dict):
        return Reference(record.version, stored, f"metrics.{PROFILE_KEY}")
    data = record.recipe.get("data") or {}
    train = data.get("train")
    if not isinstance(train, str):
        return None
    if data.get("format") == "chat":
        try:
            rows = read_chat_split(Path(train), strict=False)
        except DataError as exc:  # ChatFormatError is one
            log.warning("no drift reference from %s: %s", record.version, exc)
            return None
        return Reference(record.version, chat_profile(rows), f"recomputed: {train}")
    try:
        frame = read_split(Path(train))
    except DataError as exc:
        log.warning("no drift reference from %s: %s", record.version, exc)
        return None
    text_field = str(data.get("text_field") or "text")
    label_field = data.get("label_field")
    if text_field not in frame.columns:
        return None
    label = label_field if isinstance(label_field, str) and label_field in frame.columns else None
    return Reference(record.version, data_profile(frame, text_field, label), f"recomputed: {train}")


def find_reference(registry: Registry, deployment: str, ref: str | None = None) -> Reference | None:
    """``ref`` (``name:vN`` / ``name@alias``) or the deployment's production version, if any."""
    if ref is None:
        version = registry.alias(deployment, "production")
        if version is None:
            return None
        ref = version
    try:
        record = registry.resolve(ref)
    except NotFoundError:
        if ref.endswith("@production"):
            return None
        raise
    return profile_of_version(record)
