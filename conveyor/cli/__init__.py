"""The `conveyor` command line."""

from conveyor.cli.app import app, main

__all__ = ["app", "main"]
