"""One transaction per call: reads in a plain session, writes retried when they lose a race."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from conveyor.registry._retry import is_retriable
from conveyor.registry.engine import deferred_reads

__all__ = ["WRITE_RETRIES", "Store"]

WRITE_RETRIES = 8
T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class Store:
    """The engine and the actor every write is recorded under."""

    engine: Engine
    actor: str
    _sessions: sessionmaker[Session] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: on SQLite it takes no write lock (see ``engine``)."""
        with deferred_reads(), self._sessions.begin() as session:
            yield session

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction, again (with jittered backoff) after a lost race."""
        for attempt in range(WRITE_RETRIES):
            try:
                with self._sessions.begin() as session:
                    return work(session)
            except DBAPIError as exc:
                if not is_retriable(exc) or attempt == WRITE_RETRIES - 1:
                    raise
                log.debug("registry write lost a race (%s), retrying", type(exc.orig).__name__)
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
        raise AssertionError("unreachable")
