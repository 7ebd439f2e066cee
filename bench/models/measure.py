"""``python -m bench.models.measure``: µs per call of each way to read a report, import cost
and schema cost. Micro-benchmarks only (one process, no server): not part of ``make bench``."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

from bench.models import legacy_form as report_flow
from bench.models import legacy_validation as validation
from bench.models import msgspec_report, pydantic_report, today
from bench.submit import DESCRIPTION
from confide.errors import ValidationFailed

CATEGORIES = {"safety", "conduct", "finance", "other", "harassment", "discrimination"}
# The JSON twin of bench/submit.py's form body: anonymous, no follow-up.
VALID = {
    "category": "safety",
    "description": DESCRIPTION,
    "occurred": None,
    "location": None,
    "anonymous": True,
    "follow_up": False,
}
# Three field errors at once, each of a different rule.
INVALID = {
    "category": "nope",
    "description": "   ",
    "anonymous": False,
    "contact": {"email": "not an address"},
}
FORM = urlencode(
    {
        "how": "anonymous",
        "category": "safety",
        "description": DESCRIPTION,
        "occurred": "",
        "location": "",
        "follow_up": "no",
        "contact_name": "",
        "contact_email": "",
        "contact_phone": "",
        "step": "check",
        "form_token": "x" * 120,
    }
)


def per_call_us(
    fns: dict[str, Callable[[], Any]], *, number: int, repeat: int
) -> dict[str, tuple[float, float, float]]:
    """(median, min, max) µs of thread CPU time per call, over ``repeat`` runs of ``number``
    calls. The ways take turns within each run, so that other load on this shared machine falls
    on all of them alike; CPU time, not wall time, so that being descheduled does not count."""
    for fn in fns.values():  # warm caches (regexes, pydantic's lazy bits)
        for _ in range(number // 10 + 1):
            fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = timeit.Timer(fn, timer=time.thread_time).timeit(number)
            runs[name].append(t / number * 1e6)
    return {n: (statistics.median(r), min(r), max(r)) for n, r in runs.items()}


def _refusing(fn: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        try:
            fn()
        except ValidationFailed as exc:
            return exc.errors
        raise AssertionError("accepted an invalid report")

    return call


def ways(data: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    body = orjson.dumps(data)
    cats = CATEGORIES
    return {
        "today: read_json(bytes) + report_from_json": lambda: validation.report_from_json(
            today.parse(body), cats
        ),
        "today: report_from_json(dict) only": lambda: validation.report_from_json(data, cats),
        "pydantic: orjson.loads + model_validate": lambda: pydantic_report.report_from_data(
            orjson.loads(body), cats
        ),
        "pydantic: model_validate_json(bytes)": lambda: pydantic_report.report_from_bytes(
            body, cats
        ),
        "msgspec: json.decode(bytes, type=)": lambda: msgspec_report.report_from_bytes(body, cats),
        "msgspec: orjson.loads + convert(dict)": lambda: msgspec_report.report_from_data(
            orjson.loads(body), cats
        ),
        "parse only: read_json (stdlib json + hooks)": lambda: today.parse(body),
        "parse only: orjson.loads": lambda: orjson.loads(body),
    }


def form_ways() -> dict[str, Callable[[], Any]]:
    """The benchmark's own path: form answers to a draft (the form parse itself is shared)."""
    answers = report_flow.answers_from(dict(parse_qsl(FORM, keep_blank_values=True)))
    cats = CATEGORIES
    return {
        "today: draft_or_first_bad_step (steps, then to_api + report_from_json)": lambda: (
            report_flow.draft_or_first_bad_step(answers, cats)
        ),
        "pydantic: report_from_form (binds the answers, one pass)": lambda: (
            pydantic_report.report_from_form(answers, cats)
        ),
        "pydantic: to_api + model_validate (one pass)": lambda: pydantic_report.report_from_data(
            report_flow.to_api(answers), cats
        ),
        "msgspec: to_api + convert + draft_from (one pass)": lambda: (
            msgspec_report.report_from_data(report_flow.to_api(answers), cats)
        ),
        "form parse_qsl + answers_from (shared by all)": lambda: report_flow.answers_from(
            dict(parse_qsl(FORM, keep_blank_values=True))
        ),
    }


def _import_cost(module: str, *, after: str = "") -> dict[str, float]:
    """A fresh interpreter: wall time of the import and the RSS it adds (``after`` is imported
    first, untimed: what the web process has loaded anyway)."""
    code = (
        "import time\n"
        f"{'import ' + after if after else ''}\n"
        "def rss():\n"
        "    with open('/proc/self/status') as f:\n"
        "        return next(int(l.split()[1]) for l in f if l.startswith('VmRSS'))\n"
        "before = rss(); t = time.perf_counter()\n"
        f"import {module}\n"
        "print((time.perf_counter() - t) * 1000, (rss() - before) / 1024)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(11)
    ]
    return {
        "import_ms": statistics.median(float(r[0]) for r in runs),
        "rss_mb": statistics.median(float(r[1]) for r in runs),
    }


def schema_ms() -> dict[str, float]:
    """Building the JSON Schema of the report model once (a fresh class each time, since both
    libraries cache the schema of a class they have seen)."""
    code = {
        "pydantic": (
            "import time; t=time.perf_counter();"
            "from bench.models import pydantic_report as m; i=time.perf_counter();"
            "m.ReportIn.model_json_schema(ref_template='#/components/schemas/{model}');"
            "e=time.perf_counter(); print((i-t)*1000, (e-i)*1000)"
        ),
        "msgspec": (
            "import time; t=time.perf_counter();"
            "from bench.models import msgspec_report as m; i=time.perf_counter();"
            "m.schema(); e=time.perf_counter(); print((i-t)*1000, (e-i)*1000)"
        ),
    }
    out: dict[str, float] = {}
    for name, src in code.items():
        runs = [
            subprocess.run(
                [sys.executable, "-c", src],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ},
            ).stdout.split()
            for _ in range(7)
        ]
        out[
            f"{name}: import bench.models.{name}_report in a fresh interpreter (confide too), ms"
        ] = statistics.median(float(r[0]) for r in runs)
        out[f"{name}: JSON Schema once, ms"] = statistics.median(float(r[1]) for r in runs)
    return out


def main() -> None:
    number, repeat = 2000, 41
    print(f"per call, µs of CPU: median [min – max] of {repeat} runs of {number} calls")
    for title, data, wrap in (
        ("valid anonymous report (JSON)", VALID, False),
        ("invalid report, 3 field errors (JSON)", INVALID, True),
    ):
        print(f"\n## {title}")
        calls = {
            name: _refusing(fn) if wrap and not name.startswith("parse") else fn
            for name, fn in ways(data).items()
        }
        for name, (med, lo, hi) in per_call_us(calls, number=number, repeat=repeat).items():
            print(f"{med:8.2f}  [{lo:7.2f} – {hi:7.2f}]  {name}")
    print("\n## the benchmark's HTML form body (valid, anonymous, no follow-up)")
    for name, (med, lo, hi) in per_call_us(form_ways(), number=number, repeat=repeat).items():
        print(f"{med:8.2f}  [{lo:7.2f} – {hi:7.2f}]  {name}")
    print("\n## import in a fresh interpreter (median of 11)")
    for module in ("pydantic", "pydantic.main", "msgspec", "msgspec.json", "orjson"):
        cost = _import_cost(module)
        print(f"{cost['import_ms']:8.1f} ms  {cost['rss_mb']:6.1f} MB RSS  import {module}")
    base = "webapp.app"
    print(f"after {base} (what a web process has loaded anyway):")
    for module in ("bench.models.pydantic_report", "bench.models.msgspec_report"):
        cost = _import_cost(module, after=base)
        print(f"{cost['import_ms']:8.1f} ms  {cost['rss_mb']:6.1f} MB RSS  import {module}")
    print("\n## schema (median of 7 fresh interpreters)")
    for name, ms in schema_ms().items():
        print(f"{ms:8.2f}  {name}")
    print(json.dumps({"python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
