"""Serving workers' heartbeats: what each has loaded and its per-version request figures."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from conveyor.registry._store import Store
from conveyor.registry._upsert import upsert
from conveyor.registry.records import WorkerRecord, record_of, values_of
from conveyor.registry.tables import WorkerHeartbeat

__all__ = ["forget_worker", "heartbeat", "workers"]


def heartbeat(store: Store, record: WorkerRecord) -> None:
    def work(session: Session) -> None:
        upsert(session, WorkerHeartbeat, values_of(record), key=("worker",))

    store.write(work)


def workers(store: Store, deployment: str | None) -> list[WorkerRecord]:
    query = select(WorkerHeartbeat).order_by(WorkerHeartbeat.worker)
    if deployment:
        query = query.where(WorkerHeartbeat.deployment == deployment)
    with store.read() as session:
        return [record_of(WorkerRecord, row) for row in session.scalars(query)]


def forget_worker(store: Store, worker: str) -> None:
    def work(session: Session) -> None:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker == worker))

    store.write(work)
