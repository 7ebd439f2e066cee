"""The stripping of one file in a child process of its own, under a memory limit.

``python -m workers.strip_child ORIGINAL TYPE FOLDER MEMORY_BYTES LOG_LEVEL``: limits its own
address space (``RLIMIT_AS``) before any stripping library is loaded, asks the kernel to kill it
if the worker that started it dies (``PR_SET_PDEATHSIG``), runs
:func:`workers.tasks.files.strip_into` and writes the outcome to ``FOLDER/result.json``: the
paths written, or the reason it cannot be stripped. An image or document that needs more memory
than the limit (a decompression bomb past the header checks) ends as ``too_large_inside``,
quarantined, instead of the kernel's OOM killer taking the worker. Only paths inside the run's
folder and the type travel: never the file's bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import resource
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    original, type_value, folder, memory, level = argv[1:6]
    # Not Linux: the parent's timeout still bounds it.
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    limit = int(memory)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    from confide import logs
    from confide.files.errors import CannotStrip, StripFailure
    from confide.files.types import FileType
    from workers.tasks.files import strip_into

    logs.configure("worker", level, stream=sys.stderr)
    out = Path(folder) / "result.json"
    result: dict[str, str | None]
    try:
        stripped, preview = strip_into(Path(original), FileType(type_value), Path(folder))
        result = {"stripped": str(stripped), "preview": None if preview is None else str(preview)}
    except CannotStrip as exc:
        result = {"cannot_strip": exc.reason.value}
    except MemoryError:
        logs.get("confide.worker.files").info("attachment_not_strippable", outcome="memory_limit")
        result = {"cannot_strip": StripFailure.TOO_LARGE_INSIDE.value}
    out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
