"""`conveyor demo`: the README's first command, end to end on the shipped CLINC150 + MiniLM."""

from __future__ import annotations

import json
import shlex
from typing import Annotated, Any

import typer

from cli import _context

__all__ = ["demo", "then_lines"]

DEMO_RECIPE = "recipes/clinc150-minilm.yaml"


def _example_line(example: dict[str, Any]) -> str:
    if "answer" in example:  # a language model's reply
        return f"  {example['text']!r}\n    -> {example['answer']!r}"
    return f"  {example['text']!r:45} -> {example['label']} ({example['score']:.2f})"


def _ask(result: Any) -> str:
    """The snippet's prompt: the first the demo asked (the recipe's own test data), as a
    Python string literal with Chinese (any text) unescaped."""
    prompt = result.examples[0]["text"] if result.examples else "Hello!"
    return json.dumps(prompt, ensure_ascii=False)


def _curl(result: Any) -> str:
    """A /classify call on the first text the demo asked, quoted for a shell."""
    text = result.examples[0]["text"] if result.examples else "hello"
    body = json.dumps({"texts": [text]}, ensure_ascii=False)
    return (
        f"curl -s -X POST {result.endpoint}/classify "
        f'-H "Content-Type: application/json" -d {shlex.quote(body)} -i'
    )


OPENAI_SNIPPET = """\
             from openai import OpenAI
             client = OpenAI(base_url="{endpoint}/v1", api_key="-")
             ask = {ask}
             messages = [{{"role": "user", "content": ask}}]
             for chunk in client.chat.completions.create(
                     model="{model}", messages=messages, stream=True):
                 print(chunk.choices[0].delta.content or "", end="")"""


def demo(
    recipe: Annotated[str, typer.Option("--recipe", help="The recipe to run.")] = DEMO_RECIPE,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            min=1,
            help="Training budget (optimizer steps); default the recipe's own, capped at 400 "
            "for a classifier.",
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Model server port on 127.0.0.1.")] = 3000,
    prefect_port: Annotated[
        int, typer.Option("--prefect-port", help="Prefect server (and UI) port on 127.0.0.1.")
    ] = 4200,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Extra recipe overrides (repeatable).")
    ] = None,
    stop: Annotated[
        bool, typer.Option("--stop", help="Stop the servers the demo left running, then exit.")
    ] = False,
) -> None:
    """Retrain the demo deployment through the Prefect flow and serve the result live.

    Starts (or reuses) a Prefect server with its UI and, once a model is in production, a
    model server on 127.0.0.1; sends example requests. A second run trains a new model,
    judges it against the one serving, and promotes it through a canary or refuses it.
    """
    from conveyor.recipe import load_recipe
    from flows.demo import run_demo
    from flows.server import stop_prefect_server
    from serving.control.daemon import stop_model_servers

    settings = _context.settings()
    if stop:  # every demo's server, not only --recipe's: a user rarely repeats the recipe here
        models = stop_model_servers(settings)
        prefect = stop_prefect_server(settings)
        typer.echo(f"model servers: {'stopped ' + ', '.join(models) if models else 'none running'}")
        typer.echo(f"Prefect server: {'stopped' if prefect else 'not running'}")
        return
    loaded = load_recipe(recipe)
    name, task = loaded.name, loaded.task
    result = run_demo(
        settings,
        recipe,
        steps=steps,
        port=port,
        prefect_port=prefect_port,
        overrides=overrides or [],
        echo=typer.echo,
    )
    for example in result.examples:
        typer.echo(_example_line(example))
    if result.traffic:
        typer.echo(f"traffic during the rollout: {result.traffic}")
    outcome = result.outcome
    typer.echo("")
    typer.echo(f"outcome:     {outcome['version']}: {outcome['reason']}")
    typer.echo(f"production:  {_context.registry().alias(name, 'production') or '-'}")
    typer.echo(f"Prefect UI:  {result.prefect_url}  (flow runs, gate verdicts as artifacts)")
    if result.endpoint and task == "causal-lm":
        typer.echo(
            f"endpoint:    {result.endpoint}/v1/chat/completions   (Swagger UI: {result.endpoint}/)"
        )
        typer.echo("try:         (the openai client; with API keys on, api_key is your key)")
        typer.echo(OPENAI_SNIPPET.format(endpoint=result.endpoint, model=name, ask=_ask(result)))
    elif result.endpoint:
        typer.echo(f"endpoint:    {result.endpoint}/classify   (Swagger UI: {result.endpoint}/)")
        typer.echo(f"try:         {_curl(result)}")
    for line in then_lines(name):
        typer.echo(line)


def then_lines(name: str) -> list[str]:
    """The demo's closing lines: what to look at, and how to get a "Run" button in the UI
    (the demo runs the flow itself, so the Deployments page stays empty until then)."""
    return [
        f"then:        conveyor status {name}; conveyor models history {name} --audit",
        f"             conveyor deploy {name}   # a Run button for this retrain on the "
        "Prefect UI's Deployments page (nightly schedule, new-data trigger)",
        "             bash scripts/demo.sh   # again: a new model against this one",
        "             conveyor demo --stop   # stop the servers",
    ]
