"""`conveyor traffic DEPLOYMENT` and `conveyor traffic export`: questions over the captured
traffic (DuckDB over the workers' Parquet files and the rows of any Postgres sink the
deployment's versions capture to), and captured rows as a data split."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer._click.core import Context
from typer.core import TyperGroup

from cli import _context
from cli._render import format_table, number
from conveyor.errors import NotFoundError

if TYPE_CHECKING:
    from serving.control.traffic import TrafficQuery
    from serving.control.traffic_export import ExportFormat

__all__ = ["traffic_app"]


class _ShowByDefault(TyperGroup):
    """``conveyor traffic DEPLOYMENT …`` runs ``show``; ``export`` is the other verb."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["show", *args]
        return super().parse_args(ctx, args)


traffic_app = typer.Typer(
    cls=_ShowByDefault,
    help="What was served: a summary per version and app, SQL over the capture, an export.",
    no_args_is_help=True,
)

Deployment = Annotated[str, typer.Argument(help="The deployment whose capture to read.")]
VersionOpt = Annotated[
    str | None, typer.Option("--version", help="One version (vN or DEPLOYMENT:vN).")
]
AppOpt = Annotated[str | None, typer.Option("--app", help="One application (its key's app).")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only the last 90s, 30m, 2h or 7d.")]
WhereOpt = Annotated[
    str | None,
    typer.Option("--where", help='A condition on the rows, e.g. "status >= 400".'),
]


def _query(
    deployment: str,
    version: str | None,
    app: str | None,
    since: str | None,
    where: str | None,
) -> TrafficQuery:
    from serving.control.traffic import TrafficQuery, capture_sinks, parse_since

    registry = _context.registry()
    if not registry.list_versions(deployment, limit=1):
        raise NotFoundError(f"no deployment named {deployment!r} in the registry")
    return TrafficQuery(
        deployment,
        version,
        app,
        parse_since(since) if since else None,
        where or None,
        sinks=capture_sinks(registry, deployment),
    )


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number(value, digits=1) if isinstance(value, float) else number(value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {n}" for key, n in value.items()) or "-"
    return "-" if value is None else str(value)


SUMMARY_COLUMNS = (
    ("version", "version"),
    ("app", "app"),
    ("requests", "requests"),
    ("errors", "5xx"),
    ("refused", "4xx"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("tokens_in", "tokens in"),
    ("tokens_out", "tokens out"),
    ("cache_hits", "cache hits"),
    ("finish_reasons", "finish reasons"),
)


@traffic_app.command("show")
def show(
    deployment: Deployment,
    version: VersionOpt = None,
    app: AppOpt = None,
    since: SinceOpt = None,
    where: WhereOpt = None,
    sql: Annotated[
        str | None,
        typer.Option(
            "--sql",
            help="One SELECT over the table `traffic` (the rows the other options select; "
            "`capture` is all of it); nothing else can be read or written.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A summary per version and app (the default verb: `conveyor traffic DEPLOYMENT`).

    Requests, 5xx, 4xx, p50/p99 latency, tokens, cache hits and finish reasons; with
    --sql, that query's rows instead.

    Exit 2 for SQL that is not one SELECT or reads another file; 3 for an unknown deployment.
    """
    from serving.control.traffic import run_sql, summarize

    query = _query(deployment, version, app, since, where)
    home = _context.settings().home
    if sql is not None:
        columns, rows = run_sql(home, query, sql)
        records = [dict(zip(columns, map(_plain, row), strict=True)) for row in rows]
        if as_json:
            typer.echo(json.dumps(records, indent=2, default=str))
        else:
            typer.echo(format_table(columns, [[_cell(v) for v in row] for row in rows]))
        return
    summary = summarize(home, query)
    if as_json:
        typer.echo(json.dumps([{k: _plain(v) for k, v in r.items()} for r in summary], indent=2))
        return
    if not summary:
        typer.echo(f"no captured traffic for {deployment} matches (serving.capture.enabled?)")
        return
    rows = [[_cell(r[key]) for key, _ in SUMMARY_COLUMNS] for r in summary]
    typer.echo(format_table([title for _, title in SUMMARY_COLUMNS], rows))


def _format_of(deployment: str, version: str | None) -> ExportFormat:
    """The data format of the recipe that made the version (production's by default, else
    the newest version's)."""
    from serving.control.traffic_export import ExportFormat

    registry = _context.registry()
    if version is not None:
        record = registry.resolve(version if ":" in version else f"{deployment}:{version}")
    else:
        try:
            record = registry.resolve(f"{deployment}@production")
        except NotFoundError:  # nothing promoted yet: the newest version's recipe
            record = registry.resolve(f"{deployment}:latest")
    data = record.recipe.get("data", {}) if isinstance(record.recipe, dict) else {}
    if record.task == "causal-lm":
        return ExportFormat("chat")
    return ExportFormat(
        "text",
        text_field=str(data.get("text_field") or "text"),
        label_field=str(data.get("label_field") or "label"),
    )


@traffic_app.command("export")
def export(
    deployment: Deployment,
    to: Annotated[Path, typer.Option("--to", help="The JSONL file to write.")],
    version: VersionOpt = None,
    app: AppOpt = None,
    since: SinceOpt = None,
    where: WhereOpt = None,
) -> None:
    """Answered rows as a data split in the recipe's own format, for review.

    Text/label rows, or chat messages, with the model's answer as a draft label and each
    row's provenance (capture id, version, app, time).
    """
    from serving.control.traffic_export import export_traffic

    query = _query(deployment, version, app, since, where)
    fmt = _format_of(deployment, version)
    written = export_traffic(_context.settings().home, query, fmt, to)
    typer.echo(f"exported {written} rows to {to} ({fmt.kind} format; labels are drafts)")


def _cut(text: Any, width: int = 60) -> str:
    said = " ".join(str(text).split())
    return said if len(said) <= width else said[: width - 1] + "…"


def _publish(
    deployment: str, summary: str, a: str, b: str, rows: list[dict[str, Any]], port: int
) -> None:
    """The comparison as Prefect artifacts on the local server (started if need be)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.artifacts import publish_comparison
    from flows.server import ensure_prefect_server

    server = ensure_prefect_server(_context.settings(), port)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        key = publish_comparison(deployment, summary, a, b, rows)
    typer.echo(f"artifact: {server.url}/artifacts/key/{key}", err=True)


def _replay(
    query: Any, a: str, b: str, n: int, limit: int, as_json: bool, artifact: int | None
) -> None:
    from dataclasses import asdict

    from serving.control.traffic_replay import replay_versions

    found = replay_versions(_context.registry(), _context.settings().home, query, a, b, n)
    share = f" ({found.agreement:.1%})" if found.agreement is not None else ""
    summary = (
        f"{found.version_a} vs {found.version_b} on {found.replayed} replayed inputs: "
        f"{found.same} the same{share}, {found.replayed - found.same} differ"
    )
    if artifact is not None:
        _publish(query.deployment, summary, found.version_a, found.version_b, found.rows, artifact)
    if as_json:
        typer.echo(json.dumps(asdict(found) | {"agreement": found.agreement}, indent=2))
        return
    typer.echo(summary)
    differing = [r for r in found.rows if not r["same"]][:limit]
    if differing:
        rows = [
            (_cut(r["request"]), _cut(r["answer_a"], 30), _cut(r["answer_b"], 30), r["seen"])
            for r in differing
        ]
        headers = ("input", found.version_a, found.version_b, "seen")
        typer.echo(format_table(headers, rows))


@traffic_app.command("compare")
def compare(
    deployment: Deployment,
    version_a: Annotated[str, typer.Argument(help="One version (vN or DEPLOYMENT:vN).")],
    version_b: Annotated[str, typer.Argument(help="The other version.")],
    app: AppOpt = None,
    since: SinceOpt = None,
    where: WhereOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Differing inputs shown.")] = 20,
    replay: Annotated[
        int | None,
        typer.Option(
            "--replay",
            min=1,
            help="Replay the N most asked captured inputs through both versions, here.",
        ),
    ] = None,
    artifact: Annotated[
        int | None,
        typer.Option(
            "--artifact",
            help="Also publish the side-by-side table as a Prefect artifact on the local "
            "server at this port (4200 is the demo's).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where two versions answered the same inputs differently (canary traffic, or a replay).

    Over the inputs both versions answered (status 200), their latest answers side by side:
    how many agree, and the differing ones, most requested first. With --replay N, the N
    inputs asked most often are answered now by both versions, loaded in this process
    (greedy; no live server or key involved).
    """
    from dataclasses import asdict

    from serving.control.traffic_compare import compare_versions

    query = _query(deployment, None, app, since, where)
    if replay is not None:
        _replay(query, version_a, version_b, replay, limit, as_json, artifact)
        return
    found = compare_versions(_context.settings().home, query, version_a, version_b, limit)
    a, b = found.version_a, found.version_b
    share = f" ({found.agreement:.1%})" if found.agreement is not None else ""
    summary = (
        f"{a} vs {b}: {found.shared} inputs both answered, {found.same} the same{share}, "
        f"{found.shared - found.same} differ; {found.only_a} only {a}, {found.only_b} only {b}"
    )
    if artifact is not None:
        shown = [r | {"seen": r["seen_a"] + r["seen_b"]} for r in found.differing]
        _publish(deployment, summary, a, b, shown, artifact)
    if as_json:
        typer.echo(json.dumps(asdict(found) | {"agreement": found.agreement}, indent=2))
        return
    typer.echo(summary)
    if found.differing:
        rows = [
            (
                _cut(r["request"]),
                _cut(r["answer_a"], 30),
                _cut(r["answer_b"], 30),
                r["seen_a"],
                r["seen_b"],
            )
            for r in found.differing
        ]
        typer.echo(format_table(("input", a, b, "seen a", "seen b"), rows))
