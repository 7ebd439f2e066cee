"""Stories: attachment stripping runs on its own ``files`` queue, which the tests' worker (like
``confide run``) consumes, and only an id travels."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from PIL import Image

from confide import jobs
from confide.files.errors import CannotStrip, StripFailure
from confide.files.types import FileType
from tests import attachment_files as make
from tests.conftest import Proc, Stack
from workers.tasks.files import (
    run_folder,
    strip_in_child,
    strip_in_private_dir,
    strip_root,
    sweep_strip_folders,
)


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


HOLD_A_RUN_FOLDER = """
import sys, time
from pathlib import Path
from workers.tasks.files import run_folder
with run_folder(Path(sys.argv[1])) as folder:
    (folder / "original.jpg").write_bytes(b"CANARY-ORIGINAL")
    print(folder, flush=True)
    time.sleep(120)
"""


def test_a_killed_runs_folder_is_swept_and_a_live_runs_is_not(tmp_path: Path) -> None:
    root = strip_root(tmp_path / "strip")
    assert root.stat().st_mode & 0o777 == 0o700
    # A run killed mid-file (the hard time limit, the OOM killer): its original stays on disk.
    killed = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_RUN_FOLDER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout is not None
    left = Path(killed.stdout.readline().strip())
    with run_folder(root) as live:
        (live / "original.jpg").write_bytes(b"in use")
        assert sweep_strip_folders(root) == 0  # both in use: the other run is still alive
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        killed.stdout.close()
        assert (left / "original.jpg").exists()
        assert sweep_strip_folders(root) == 1
        assert not left.exists() and (live / "original.jpg").exists()
    assert not live.exists()
    assert list(root.iterdir()) == []


def test_a_file_needing_more_memory_than_the_limit_is_refused_rather_than_killing_the_worker(
    tmp_path: Path,
) -> None:
    # 8000 x 8000 pixels: under the 80 MP header check, a few hundred KiB on disk, but ~190 MB
    # decoded, and more to re-encode.
    big = tmp_path / "big.png"
    Image.new("RGB", (8000, 8000)).save(big, "PNG", compress_level=1)
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    with pytest.raises(CannotStrip) as refused:
        strip_in_child(big, FileType.PNG, folder, memory_bytes=256 << 20)
    assert refused.value.reason is StripFailure.TOO_LARGE_INSIDE
    # With room (the default limit), the same child strips a photo and makes its preview.
    photo = make.jpeg(tmp_path / "photo.jpg")
    ok = tmp_path / "ok"
    ok.mkdir(mode=0o700)
    stripped, preview = strip_in_child(photo, FileType.JPEG, ok, memory_bytes=2048 << 20)
    assert stripped.parent == ok and make.SERIAL.encode() not in stripped.read_bytes()
    assert preview is not None and preview.is_file()
