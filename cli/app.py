"""The `conveyor` command: thin wiring from verbs to the stages."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from cli import _context
from cli.convert_cmd import convert
from cli.demo_cmd import demo
from cli.deploy_cmd import deploy, watch
from cli.distil_cmd import distil
from cli.evaluate_cmd import evaluate
from cli.k8s_cmd import k8s_app
from cli.keys_cmd import keys_app
from cli.models_cmd import models_app
from cli.monitor_cmd import monitor
from cli.recipe_cmd import recipe_app
from cli.serve_cmd import package, promote, rollback, serve, status
from cli.traffic_cmd import traffic_app
from cli.train_cmd import train
from cli.validate_cmd import validate
from conveyor import __version__
from conveyor.errors import ConveyorError, ExitCode
from conveyor.registry import masked_url

__all__ = ["app", "main"]

app = typer.Typer(
    name="conveyor",
    help="Carry a language model from data to a live HTTP endpoint, and back when it misbehaves.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(recipe_app, name="recipe")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(traffic_app, name="traffic")
app.add_typer(k8s_app, name="k8s")
app.command("train")(train)
app.command("convert")(convert)
app.command("distil")(distil)
app.command("validate")(validate)
app.command("evaluate")(evaluate)
app.command("demo")(demo)
app.command("deploy")(deploy)
app.command("watch")(watch)
app.command("monitor")(monitor)
for _verb in (package, serve, promote, rollback, status):
    app.command()(_verb)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    _context.setup_process(verbose)


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and a non-zero exit.

    Every exit status comes from :class:`conveyor.errors.ExitCode` (the README's table).
    """
    try:
        code = app(standalone_mode=False, prog_name="conveyor")
    except NoArgsIsHelpError as exc:  # a bare verb family: its help, as before
        exc.show()
        sys.exit(ExitCode.BAD_INPUT)
    except UsageError as exc:  # a missing argument, an unknown option: one line
        hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(ExitCode.BAD_INPUT)
    except ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except ConveyorError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OperationalError as exc:
        url = masked_url(_context.settings().registry_url)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        typer.echo(f"error: cannot use the registry at {url}: {reason}", err=True)
        sys.exit(ExitCode.BAD_INPUT)
    sys.exit(code if isinstance(code, int) else ExitCode.OK)
