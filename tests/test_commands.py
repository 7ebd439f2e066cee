"""`confide migrate` and `confide teams list` against the real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from confide import db as confide_db
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


async def test_a_production_web_is_told_which_migrations_it_lacks(
    db: asyncpg.Connection, tmp_path: Path
) -> None:
    # What the app factory checks before a production web starts (it never migrates itself).
    assert await confide_db.pending_migrations(db) == []
    for path in confide_db.MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "9999_later.sql").write_text("SELECT 1;\n", encoding="utf-8")
    assert await confide_db.pending_migrations(db, tmp_path) == ["9999_later.sql"]
