"""Issue 13, item 3: the report request model written with pydantic v2 and with msgspec, measured
against today's ``confide.services.validation`` (not part of ``make bench``; see RESULTS.md)."""
