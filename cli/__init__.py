"""The `conveyor` command line."""

from cli.app import app, main

__all__ = ["app", "main"]
