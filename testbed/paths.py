"""The checkout's folders that tests and benchmarks read: recipes, the shipped data, E2E,
CrossWOZ; and the browser the e2e tests look through (Debian's chromium)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO_ROOT / "recipes"
DATA_DIR = REPO_ROOT / "data"
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
E2E_DIR = DATA_DIR / "e2e_nlg"
CROSSWOZ_DIR = DATA_DIR / "crosswoz_nlg"
CHROMIUM = Path("/usr/bin/chromium")
