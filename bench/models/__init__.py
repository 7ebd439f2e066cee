"""Issue 13, item 3: the report request model written with pydantic v2 and with msgspec, measured
against the validation of the time (frozen in ``legacy_validation.py`` and ``legacy_form.py``
since pydantic was adopted; not part of ``make bench``; see RESULTS.md)."""
