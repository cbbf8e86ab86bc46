"""Prefect flows that chain the stages; the stages themselves never import Prefect."""

from flows.retrain import DEFAULT_RECIPE, retrain

__all__ = ["DEFAULT_RECIPE", "retrain"]
