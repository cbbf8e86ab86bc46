"""`conveyor keys ...`: per-application API keys, their limits and today's usage."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

import typer

from cli import _context
from cli._render import format_table, json_text, when

__all__ = ["keys_app"]

keys_app = typer.Typer(
    help="API keys per application: create, list (with usage), revoke.", no_args_is_help=True
)


@keys_app.command("create")
def create(
    app: Annotated[str, typer.Argument(help="The application the key is for.")],
    deployments: Annotated[
        list[str], typer.Option("--deployments", "-d", help="Deployment it may call (repeat).")
    ],
    rate: Annotated[
        str | None, typer.Option("--rate", help="Requests per time, e.g. 20/s or 600/min.")
    ] = None,
    quota: Annotated[
        str | None, typer.Option("--quota", help="Requests per UTC day, e.g. 100000/day.")
    ] = None,
    tokens_per_minute: Annotated[
        int | None,
        typer.Option("--tokens-per-minute", min=1, help="Prompt + completion tokens a minute."),
    ] = None,
    tokens_per_day: Annotated[
        int | None,
        typer.Option("--tokens-per-day", min=1, help="Prompt + completion tokens a UTC day."),
    ] = None,
    may_pin_versions: Annotated[
        bool,
        typer.Option(
            "--may-pin-versions",
            help="May name a serving version (deployment:vN) as its model, not only the "
            "deployment; never a candidate still in its canary.",
        ),
    ] = False,
) -> None:
    """Make a key; it is printed once (only its SHA-256 is stored) and audited."""
    from serving.worker.limits import parse_quota, parse_rate

    names = [name.strip() for item in deployments for name in item.split(",") if name.strip()]
    record, plaintext = _context.registry().create_api_key(
        app,
        names,
        rate_per_second=parse_rate(rate) if rate else None,
        quota_per_day=parse_quota(quota) if quota else None,
        tokens_per_minute=tokens_per_minute,
        tokens_per_day=tokens_per_day,
        may_pin_versions=may_pin_versions,
    )
    typer.echo(plaintext)
    limits = f"rate {_rate(record.rate_per_second)}, quota {_quota(record.quota_per_day)}, "
    limits += f"tokens {_tokens(record.tokens_per_minute, record.tokens_per_day)}"
    limits += ", may pin versions" if record.may_pin_versions else ""
    typer.echo(
        f"key {record.key_prefix}... for {app} on {', '.join(names)} ({limits}); "
        "store it now, it is not shown again",
        err=True,
    )


@keys_app.command("list")
def list_keys(
    revoked: Annotated[bool, typer.Option("--revoked", help="Also revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Keys with their limits, and each app's requests today (UTC): answered / refused."""
    registry = _context.registry()
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    usage = registry.usage(day)
    records = registry.list_api_keys(include_revoked=revoked)
    if as_json:
        rows = [
            asdict(r)
            | {"requests_today": usage.get(r.app, (0, 0))[0]}
            | {"refused_today": usage.get(r.app, (0, 0))[1]}
            for r in records
        ]
        typer.echo(json_text(rows))
        return
    if not records:
        typer.echo("no API keys" + ("" if revoked else " (active)"))
        return
    table = [
        (
            r.app,
            r.key_prefix + "...",
            ",".join(r.deployments),
            _rate(r.rate_per_second),
            _quota(r.quota_per_day),
            _tokens(r.tokens_per_minute, r.tokens_per_day),
            usage.get(r.app, (0, 0))[0],
            usage.get(r.app, (0, 0))[1],
            when(r.created_at),
            when(r.revoked_at) if r.revoked_at else "-",
        )
        for r in records
    ]
    headers = ("app", "key", "deployments", "rate", "quota", "tokens", "today", "refused")
    typer.echo(format_table((*headers, "created", "revoked"), table))


@keys_app.command("revoke")
def revoke(
    app: Annotated[str, typer.Argument(help="Every active key of this application.")],
    reason: Annotated[str, typer.Option("--reason", help="Written to the audit log.")] = "",
) -> None:
    """Revoke an app's keys; servers refuse them within seconds (401)."""
    records = _context.registry().revoke_api_keys(app, reason=reason)
    typer.echo(
        f"revoked {len(records)} key(s) of {app}: {', '.join(r.key_prefix for r in records)}"
    )


def _rate(value: float | None) -> str:
    return f"{value:g}/s" if value is not None else "unlimited"


def _quota(value: int | None) -> str:
    return f"{value}/day" if value is not None else "unlimited"


def _tokens(per_minute: int | None, per_day: int | None) -> str:
    if per_minute is None and per_day is None:
        return "unlimited"
    parts = [f"{per_minute}/min" if per_minute else "", f"{per_day}/day" if per_day else ""]
    return " ".join(p for p in parts if p)
