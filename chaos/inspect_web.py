"""The canary scan's web process: the normal one, plus a dump of its rate limiters on SIGUSR2.

The limiters' buckets live only in the web process's memory, so no file or server holds them
for the scan to read. ``python -m chaos.inspect_web`` runs ``webapp`` unchanged and, on
``SIGUSR2``, writes every limiter's state to ``$CHAOS_LIMITER_DUMP``: each bucket's key as raw
bytes and as hex, its tokens and time, and the process's HMAC keys, so that the scan can check
that it saw every canary client's bucket (the positive control). This hook exists here and
nowhere in the product.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp import web

from webapp import __main__ as web_main
from webapp import app as web_app
from webapp.keys import LIMITS, LOGIN_LIMITS
from webapp.security import TokenBuckets

DUMP_ENV = "CHAOS_LIMITER_DUMP"


def dump_limiters(app: web.Application) -> bytes:
    lines: list[bytes] = []
    for name, limits in (("submit", app[LIMITS]), ("login", app[LOGIN_LIMITS])):
        state: dict[str, Any] = vars(limits)
        for attr, value in state.items():
            label = f"{name}.{attr}".encode()
            if isinstance(value, TokenBuckets):
                for key, bucket in value._buckets.items():
                    lines.append(
                        b" ".join(
                            (label, key, key.hex().encode(), f"{bucket.tokens} {bucket.updated}"
                             .encode())
                        )
                    )  # fmt: skip
            elif isinstance(value, bytes):  # the HMAC keys: hex only, one per line
                lines.append(label + b" " + value.hex().encode())
            else:
                lines.append(label + b" " + repr(value).encode())
    return b"\n".join(lines) + b"\n"


def main() -> int:
    path = Path(os.environ[DUMP_ENV])

    def create_and_watch(settings: Any) -> web.Application:
        app = web_app.create_app(settings)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            partial = path.with_suffix(".partial")
            partial.write_bytes(dump_limiters(app))
            partial.replace(path)

        signal.signal(signal.SIGUSR2, on_signal)
        return app

    # webapp.__main__ imported create_app by name: replace that name.
    web_main.create_app = create_and_watch  # type: ignore[attr-defined]
    return web_main.main()


if __name__ == "__main__":
    sys.exit(main())
