"""Stories: attachment stripping runs on its own ``files`` queue, which the tests' worker (like
``confide run``) consumes, and only an id travels."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from celery import Celery

from confide import jobs
from confide.files.errors import CannotStrip
from confide.files.types import FileType
from tests import attachment_files as make
from tests.conftest import Proc, Stack
from workers.tasks.files import strip_in_private_dir


def client(stack: Stack) -> Celery:
    app = Celery("probe", broker=stack.env["REDIS_URL"])
    app.conf.update(jobs.celery_config())  # the web's routing: by task name, never by hand
    return app


def test_strip_task_is_routed_to_the_files_queue_and_the_worker_runs_it(
    stack: Stack, worker: Proc
) -> None:
    app = client(stack)
    try:
        queues = app.control.inspect(timeout=2).active_queues() or {}
        consumed = {q["name"] for qs in queues.values() for q in qs}
        assert {jobs.HASHING_QUEUE, jobs.DEFAULT_QUEUE, jobs.FILES_QUEUE} <= consumed
        assert app.amqp.router.route({}, jobs.STRIP_ATTACHMENT)["queue"].name == jobs.FILES_QUEUE
        attachment_id = str(uuid.uuid4())
        app.send_task(jobs.STRIP_ATTACHMENT, args=[attachment_id])
    finally:
        app.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "attachment_prepared" in worker.log_text() and attachment_id in worker.log_text():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the files task did not run:\n" + worker.log_text()[-2000:])
    assert "CANARY" not in stack.logs()


def test_stripping_happens_in_a_private_folder_that_is_removed(tmp_path: Path) -> None:
    src = make.jpeg(tmp_path / "photo.jpg")
    with strip_in_private_dir(src, FileType.JPEG) as stripped:
        folder = stripped.parent
        assert folder.stat().st_mode & 0o777 == 0o700
        assert make.SERIAL.encode() not in stripped.read_bytes()
    assert not folder.exists()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(src.read_bytes()[:300])
    with pytest.raises(CannotStrip), strip_in_private_dir(broken, FileType.JPEG):
        pass
