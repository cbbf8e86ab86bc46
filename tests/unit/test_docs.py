"""The README says what the code does: its commands exist, its recipe table is the schema's."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conveyor.errors import EXIT_CODES_END, EXIT_CODES_START, ExitCode, exit_code_table
from conveyor.recipe.reference import README_END, README_START, field_rows, markdown_reference
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.unit

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def test_quickstart_is_two_commands_whose_scripts_exist() -> None:
    block = README.split("## Quickstart", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    for command in commands:
        assert (REPO_ROOT / command.split()[1]).is_file()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def test_recipe_reference_in_readme_matches_the_schema() -> None:
    section = README.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert section == markdown_reference(), "run: conveyor recipe reference --update README.md"
    for key, *_ in field_rows():
        assert f"`{key}`" in section


def test_exit_code_table_in_readme_is_the_enum() -> None:
    section = README.split(EXIT_CODES_START, 1)[1].split(EXIT_CODES_END, 1)[0].strip()
    assert section == exit_code_table(), "paste conveyor.errors.exit_code_table() into README.md"
    documented = [int(line.split("|")[1]) for line in section.splitlines()[2:]]
    assert documented == [code.value for code in ExitCode]
    assert ExitCode.TRAINING_FAILED != ExitCode.PROMOTION_REFUSED


# A bare number as a status (signal conventions like ``128 + signum`` are not table entries).
_LITERAL_EXIT = re.compile(r"exit_code\s*(?::\s*int\s*)?=\s*\d+\s*$|(Exit|sys\.exit)\(\d+\)")


def test_exit_statuses_come_only_from_the_enum() -> None:
    """No command or error class writes an exit number itself: the table is the only source."""
    offenders = []
    for folder in (
        "cli",
        "conveyor",
        "conversion",
        "data_checks",
        "flows",
        "gates",
        "serving",
        "training",
    ):
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _LITERAL_EXIT.search(line):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "use conveyor.errors.ExitCode"


def test_every_documented_command_exists() -> None:
    documented = set(
        re.findall(r"^\| `conveyor ([a-z][a-z0-9]*(?: [a-z]+)?)", README, flags=re.MULTILINE)
    )
    assert documented, "the README's command table is missing"
    for command in sorted(documented):
        words = command.split()
        result = subprocess.run(
            [sys.executable, "-m", "conveyor", *words, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"conveyor {command}: {result.stderr}"


def test_every_shipped_recipe_is_listed() -> None:
    for path in sorted((REPO_ROOT / "recipes").glob("*.yaml")):
        assert f"recipes/{path.name}" in README
