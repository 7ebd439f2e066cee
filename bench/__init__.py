"""`make bench`: Confide's figures as ratios to a bare baseline measured in the same run.

Each benchmark is a module with ``NAME``, ``TITLE`` and ``run(ctx) -> list[Result]``; register it
in ``bench.__main__.BENCHMARKS``. Shared plumbing (processes, wrk, RSS, PostgreSQL and Redis) lives
in ``bench.common``. See docs/benchmarks.md.
"""
