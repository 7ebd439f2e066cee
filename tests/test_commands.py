"""`confide migrate` and `confide teams list` against the real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import Stack

ROOT = Path(__file__).resolve().parent.parent


def confide(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "confide.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **stack.env},
        timeout=60,
        check=False,
    )


def test_ops_can_migrate_twice_safely(stack: Stack) -> None:
    first = confide(stack, "migrate")
    second = confide(stack, "migrate")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0 and "applied 0 migration(s)" in second.stdout


def test_ops_can_list_teams_one_slug_a_line(stack: Stack) -> None:
    result = confide(stack, "teams", "list")
    assert result.returncode == 0, result.stderr
    slugs = result.stdout.splitlines()
    # The demo organisation's teams, sorted, one a line (an admin test may have added one).
    assert {"hr", "safety", "wellbeing"} <= set(slugs) and slugs == sorted(slugs)
    assert all(slug and slug == slug.strip() for slug in slugs)
