"""What every command needs: settings with the offline environment applied, the registry."""

from __future__ import annotations

import logging
from functools import lru_cache

from conveyor.offline import apply_offline_environment
from conveyor.registry import Registry, open_registry
from conveyor.settings import Settings, load_settings

__all__ = ["registry", "settings", "setup_process"]


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()


@lru_cache(maxsize=1)
def registry() -> Registry:
    return open_registry(settings())


def setup_process(verbose: bool) -> None:
    """Offline variables and logging, once per CLI process, before any heavy import."""
    apply_offline_environment(settings())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
