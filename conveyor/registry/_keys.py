"""API keys (only their SHA-256 is stored) and each application's requests per UTC day."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.errors import NotFoundError
from conveyor.registry._audit import add_audit
from conveyor.registry._store import Store
from conveyor.registry._upsert import upsert
from conveyor.registry.records import ApiKeyRecord, record_of
from conveyor.registry.tables import ApiKey, ApiUsage, utcnow

__all__ = [
    "API_KEY_PREFIX",
    "KeyLimits",
    "add_usage",
    "create_api_key",
    "hash_api_key",
    "list_api_keys",
    "revoke_api_keys",
    "usage",
    "verify_api_key",
]

API_KEY_PREFIX = "cvy_"


def hash_api_key(plaintext: str) -> str:
    """Keys are 256-bit random tokens, so one SHA-256 is a sufficient, fast hash."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyLimits:
    """What a key allows: requests per second and per day, tokens per minute and per day, and
    whether it may pin a version rather than take the deployment's canary split."""

    rate_per_second: float | None = None
    quota_per_day: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    may_pin_versions: bool = False


def create_api_key(
    store: Store, app: str, deployments: Sequence[str], limits: KeyLimits
) -> tuple[ApiKeyRecord, str]:
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)

    def work(session: Session) -> ApiKeyRecord:
        row = ApiKey(
            app=app,
            key_prefix=plaintext[:12],
            key_hash=hash_api_key(plaintext),
            deployments=list(deployments),
            **asdict(limits),
            created_at=utcnow(),
            created_by=store.actor,
            revoked_at=None,
        )
        session.add(row)
        session.flush()
        details = {
            "key_prefix": row.key_prefix,
            "deployments": list(deployments),
            **asdict(limits),
        }
        add_audit(session, store.actor, "key.created", None, None, f"key for {app}", details)
        return record_of(ApiKeyRecord, row)

    return store.write(work), plaintext


def list_api_keys(store: Store, include_revoked: bool) -> list[ApiKeyRecord]:
    query = select(ApiKey).order_by(ApiKey.app, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    with store.read() as session:
        return [record_of(ApiKeyRecord, row) for row in session.scalars(query)]


def revoke_api_keys(store: Store, app: str, reason: str) -> list[ApiKeyRecord]:
    def work(session: Session) -> list[ApiKeyRecord]:
        query = select(ApiKey).where(ApiKey.app == app, ApiKey.revoked_at.is_(None))
        rows = list(session.scalars(query))
        if not rows:
            raise NotFoundError(f"app '{app}' has no active API keys")
        now = utcnow()
        for row in rows:
            row.revoked_at = now
        details = {"key_prefixes": [row.key_prefix for row in rows]}
        why = reason or f"revoke {app}"
        add_audit(session, store.actor, "key.revoked", None, None, why, details)
        session.flush()
        return [record_of(ApiKeyRecord, row) for row in rows]

    return store.write(work)


def verify_api_key(store: Store, plaintext: str) -> ApiKeyRecord | None:
    digest = hash_api_key(plaintext)
    with store.read() as session:
        row = session.scalar(
            select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
        )
        return record_of(ApiKeyRecord, row) if row else None


def add_usage(store: Store, day: str, counts: dict[str, tuple[int, int]]) -> None:
    """One atomic increment per application: concurrent flushes add up, none is lost."""

    def work(session: Session) -> None:
        for app, (requests, refused) in sorted(counts.items()):  # one lock order for all
            values = {"app": app, "day": day, "requests": requests, "refused": refused}
            upsert(session, ApiUsage, values, key=("app", "day"), add=("requests", "refused"))

    if counts:
        store.write(work)


def usage(store: Store, day: str) -> dict[str, tuple[int, int]]:
    with store.read() as session:
        rows = session.scalars(select(ApiUsage).where(ApiUsage.day == day))
        return {row.app: (row.requests, row.refused) for row in rows}
