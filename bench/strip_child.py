"""One file stripped in a fresh, worker-like process: wall time and memory growth over idle.

``python -m bench.strip_child --type TYPE --file PATH --warm SMALL`` does what the ``files``
worker does between decrypting an original and storing its stripped copy: the task's own
``workers.tasks.files.strip_into`` (the whole-file type check, :func:`confide.files.strip.strip_file`
and, for images, the preview) when the task has it, else ``strip_in_private_dir`` (stripping
alone), in a private folder.

Before the clock starts it imports what the worker's task imports and strips ``SMALL`` (a small
file of the same type), so that the libraries' own set-up (libmagic's database, libjpeg, qpdf,
zlib) is part of "idle", as in a worker that has stripped a file before. Then the process's peak
RSS (``VmHWM``) is reset (``/proc/self/clear_refs``, see :mod:`bench.escalation_child`), and
``pass_peak_mb`` is the most the whole process held while the file was stripped. Prints one JSON
line, with the stripped copy's size, which path ran, and whether any of the bench's canaries
survived in the copy.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.attachment_files import CANARIES
from bench.escalation_child import Meter
from confide.files.types import FileType
from workers.tasks import files as task


def _worker_path() -> Callable[[Path, FileType, Path], tuple[Path, Any]] | None:
    found: Callable[[Path, FileType, Path], tuple[Path, Any]] | None = getattr(
        task, "strip_into", None
    )
    return found


def _run(path: Path, file_type: FileType, meter: Meter | None) -> tuple[dict[str, Any], bytes]:
    strip_into = _worker_path()
    measured: dict[str, Any] = {}
    if strip_into is not None:
        with tempfile.TemporaryDirectory(prefix="confide-strip-") as folder:
            if meter:
                meter.start()
            stripped, preview = strip_into(path, file_type, Path(folder))
            if meter:
                meter.stop()
                measured = {**meter.as_json(), "path": "strip_into (with preview)"}
                measured["preview_bytes"] = 0 if preview is None else preview.stat().st_size
            return measured, stripped.read_bytes()
    if meter:
        meter.start()
    with task.strip_in_private_dir(path, file_type) as stripped:
        if meter:
            meter.stop()
            measured = {**meter.as_json(), "path": "strip_in_private_dir"}
        return measured, stripped.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--type", choices=[t.value for t in FileType], required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--warm", type=Path, required=True)
    args = parser.parse_args()
    file_type = FileType(args.type)
    _run(args.warm, file_type, None)
    gc.collect()
    # The peak is read (meter.as_json) before the copy is read back for the canary check.
    measured, data = _run(args.file, file_type, Meter())
    left = [c for c in CANARIES if c.encode() in data]
    print(json.dumps({**measured, "stripped_bytes": len(data), "canaries_left": left}))


if __name__ == "__main__":
    main()
