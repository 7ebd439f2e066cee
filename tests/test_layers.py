"""The layers hold as the code grows: worker modules import cleanly on their own."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import workers

ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(workers.__path__, prefix="workers.") if not m.ispkg
)


@pytest.mark.parametrize("module", WORKER_MODULES)
def test_each_worker_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    # No import loop (tasks never import the Celery app), and nothing read from the environment
    # at import: the servers' addresses are not even set.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_task_modules_are_listed_for_celery_and_register_every_task_name() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from workers.celery_app import app, TASK_MODULES;"
            "import pkgutil, workers.tasks;"
            "found = sorted('workers.tasks.' + m.name for m in pkgutil.iter_modules(workers.tasks.__path__));"
            "assert sorted(TASK_MODULES) == found, (TASK_MODULES, found);"
            "app.loader.import_default_modules(); app.finalize();"
            "from confide import jobs;"
            "names = {v for k, v in vars(jobs).items() if k.isupper() and isinstance(v, str) and v.startswith('confide.')};"
            "missing = names - set(app.tasks); assert not missing, missing",
        ],
        env=dict(os.environ, REDIS_URL="redis://127.0.0.1:1/0"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
