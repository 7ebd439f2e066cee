"""The layers hold as the code grows: worker modules import cleanly on their own."""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import workers
from confide import sql

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


SQL_MODULES = sorted(m.name for m in pkgutil.iter_modules(sql.__path__, prefix="confide.sql."))


@pytest.mark.parametrize("module", SQL_MODULES)
def test_no_query_function_hands_its_caller_a_bare_record(module: str) -> None:
    # Rows leave confide/sql/ typed (docs/architecture.md, "Typed rows"): a caller reads
    # row.reference, which mypy checks, never row["reference"], which it cannot.
    found = importlib.import_module(module)
    for name, function in inspect.getmembers(found, inspect.iscoroutinefunction):
        if function.__module__ != module or name.startswith("_"):
            continue
        returns = str(inspect.signature(function).return_annotation)
        assert "Record" not in returns, f"{module}.{name} returns {returns}"


def test_the_web_and_the_workers_send_and_accept_tasks_alike(tmp_path: Path) -> None:
    # One configuration for both Celery apps: the serializer the web sends with is the one the
    # workers accept, a hashing task goes to the hashing queue from either, and both restore an
    # unacknowledged message after the same time.
    from confide import jobs
    from confide.settings import Settings
    from webapp.jobs import make_client

    env = {
        "CONFIDE_DATA_DIR": str(tmp_path),
        "CONFIDE_ENCRYPTION_KEYS": "k1:" + base64.b64encode(b"\x01" * 32).decode(),
        "CONFIDE_LOOKUP_KEY": "lookup-key-for-tests",
        "CONFIDE_CODE_PEPPER": "pepper-for-tests",
        "CONFIDE_SESSION_KEY": "session-key-for-tests",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    keys = ["task_serializer", "accept_content", "task_default_queue", "task_routes"]
    # The workers' app in a process of its own: its configuration reads the environment.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys; from workers.celery_app import app; c = app.conf;"
            f"keys = {keys!r};"
            "print(json.dumps({k: c[k] for k in keys}"
            " | {'timeout': c.broker_transport_options['visibility_timeout']}))",
        ],
        env=dict(os.environ, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    worker = json.loads(done.stdout)
    web = make_client(Settings.from_env(env)).conf
    for key in keys:
        assert web[key] == worker[key], key
    assert web.task_routes[jobs.CHECK_CODE] == {"queue": jobs.HASHING_QUEUE}
    assert web.accept_content == ["json"]
    assert web.broker_transport_options["visibility_timeout"] == worker["timeout"]
