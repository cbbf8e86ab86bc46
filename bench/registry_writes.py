"""Registry write cost: a promotion's bookkeeping through conveyor vs raw sqlite3.

Arm: ``Registry.move_alias`` (alias pointer + alias history + audit entry in one
``BEGIN IMMEDIATE`` transaction, through SQLAlchemy). Baseline: the same three
statements through the stdlib ``sqlite3`` driver with the same pragmas.

    .venv/bin/python -m bench.registry_writes [--moves 300] [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from conveyor.registry import Registry
from testbed.harness import compare, print_comparison


def _conveyor_arm(registry: Registry, versions: list[str], moves: int) -> float:
    for index in range(moves):
        registry.move_alias("bench", "production", versions[index % 2], reason="bench")
    return moves


def _raw_arm(path: Path, versions: list[str], moves: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None, timeout=60)
    connection.execute("PRAGMA busy_timeout = 60000")
    connection.execute("PRAGMA synchronous = NORMAL")
    for index in range(moves):
        now = datetime.now(UTC).isoformat()
        target = versions[index % 2]
        connection.execute("BEGIN IMMEDIATE")
        current = connection.execute(
            "SELECT version FROM aliases WHERE deployment = ? AND alias = ?", ("bench", "raw")
        ).fetchone()
        connection.execute(
            "INSERT INTO aliases (deployment, alias, version, updated_at, updated_by) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (deployment, alias) DO UPDATE SET "
            "version = excluded.version, updated_at = excluded.updated_at",
            ("bench", "raw", target, now, "bench"),
        )
        connection.execute(
            "INSERT INTO alias_history (deployment, alias, from_version, to_version, at, actor, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("bench", "raw", current[0] if current else None, target, now, "bench", "bench"),
        )
        connection.execute(
            "INSERT INTO audit_log (at, actor, action, deployment, version, reason, details) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (now, "bench", "alias.moved", "bench", target, "bench", "{}"),
        )
        connection.execute("COMMIT")
    connection.close()
    return moves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "registry.db"
        registry = Registry.from_url(f"sqlite:///{path}", actor="bench")
        versions = [
            registry.register_version(
                "bench", task="classification", base_model="minilm", recipe={}
            ).version
            for _ in range(2)
        ]
        result = compare(
            "registry: alias move with history and audit (SQLite, one transaction each)",
            ("conveyor Registry.move_alias", lambda: _conveyor_arm(registry, versions, args.moves)),
            ("raw sqlite3, same statements", lambda: _raw_arm(path, versions, args.moves)),
            repeats=args.repeats,
            unit="moves/s",
        )
        registry.close()
    print_comparison(result, as_json=args.json)


if __name__ == "__main__":
    main()
