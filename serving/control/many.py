"""Which deployments one ``conveyor serve`` serves, checked before any worker starts.

``--deployments A,B,C`` names them; ``--base NAME`` takes every deployment whose production
version is a LoRA adapter on that base. Before the server starts: every named deployment
exists, their production adapters share one base (by SHA-256), and each fits the adapter
memory budget alone. Each refusal is a :class:`~conveyor.errors.ConveyorError` (exit 2) or
:class:`~conveyor.errors.NotFoundError` (exit 3) saying what and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError, NotFoundError
from conveyor.model_folder import ModelKind, read_manifest
from conveyor.registry import Registry, VersionRecord
from serving.engine.adapter_budget import AdapterBudget, adapter_bytes

__all__ = ["ProductionAdapter", "check_many", "deployments_on_base", "served_names"]

PRODUCTION = "production"


@dataclass(frozen=True)
class ProductionAdapter:
    """A deployment's production version, when it is a LoRA adapter: on which base, how big."""

    deployment: str
    version: str
    base_name: str
    base_sha256: str
    nbytes: int


def _adapter_of(record: VersionRecord) -> ProductionAdapter | None:
    folder = Path(record.artifact_uri) if record.artifact_uri else None
    if folder is None or not (folder / "adapter_config.json").is_file():
        return None
    manifest = read_manifest(folder)
    if manifest.kind is not ModelKind.LORA_ADAPTER or manifest.base is None:
        return None
    base = manifest.base
    return ProductionAdapter(
        record.deployment, record.version, base.name, base.sha256, adapter_bytes(folder)
    )


def _production(registry: Registry, deployment: str) -> VersionRecord | None:
    version = registry.alias(deployment, PRODUCTION)
    return registry.resolve(version) if version else None


def deployments_on_base(registry: Registry, base: str) -> list[str]:
    """Every deployment whose production version is an adapter on ``base`` (its name, or
    the name its versions were trained from), in name order."""
    found = []
    for deployment in sorted({v.deployment for v in registry.list_versions()}):
        record = _production(registry, deployment)
        adapter = _adapter_of(record) if record is not None else None
        if adapter is not None and base in (adapter.base_name, record.base_model if record else ""):
            found.append(deployment)
    if not found:
        raise NotFoundError(
            f"no deployment's production version is a LoRA adapter on base '{base}' "
            "(conveyor models list shows each version's base)"
        )
    return found


def served_names(
    registry: Registry, deployment: str | None, deployments: str | None, base: str | None
) -> list[str]:
    """The deployments to serve, from exactly one of: DEPLOYMENT, --deployments, --base."""
    given = [flag for flag, value in (("DEPLOYMENT", deployment), ("--deployments", deployments),
             ("--base", base)) if value]  # fmt: skip
    if len(given) != 1:
        raise ConveyorError(
            "name what to serve with one of DEPLOYMENT, --deployments A,B,C or --base NAME"
            + (f" (given: {', '.join(given)})" if given else "")
        )
    if base:
        return deployments_on_base(registry, base)
    names = [n.strip() for n in (deployments or deployment or "").split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise ConveyorError(f"--deployments names one deployment twice: {','.join(names)}")
    known = {v.deployment for v in registry.list_versions()}
    missing = [n for n in names if n not in known]
    if missing and len(names) > 1:  # one deployment may be served before its first version
        raise NotFoundError(f"no such deployment: {', '.join(missing)}")
    return names


def check_many(registry: Registry, names: list[str], budget: AdapterBudget) -> None:
    """Refuse, before the server starts, deployments it could not serve together: their
    production adapters on different bases (both hashes named), or one adapter over the
    memory budget (both sizes named)."""
    records = {name: _production(registry, name) for name in names}
    unset = [name for name, record in records.items() if record is None]
    if unset and len(names) > 1:
        raise ConveyorError(
            f"{', '.join(unset)}: no production version yet (conveyor promote VERSION first)"
        )
    adapters = [a for r in records.values() if r is not None and (a := _adapter_of(r)) is not None]
    for adapter in adapters:
        try:
            budget.check_fits(adapter.version, adapter.nbytes)
        except ValueError as exc:
            raise ConveyorError(str(exc)) from exc
    if len(names) < 2:
        return
    plain = [n for n in names if n not in {a.deployment for a in adapters}]
    if plain:
        raise ConveyorError(
            f"{', '.join(plain)}: production is not a LoRA adapter; a server of several "
            "deployments serves adapters on one base"
        )
    first = adapters[0]
    for other in adapters[1:]:
        if other.base_sha256 != first.base_sha256:
            raise ConveyorError(
                f"{other.version} is an adapter on base {other.base_name} (sha256 "
                f"{other.base_sha256}), {first.version} on {first.base_name} (sha256 "
                f"{first.base_sha256}): one server serves one base"
            )
