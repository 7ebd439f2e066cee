"""The organisation file's auto-close and statutory-clock keys (``[lifecycle]``): how long an
anonymous thread may stay silent after a case worker's message before it closes, whether the EU
Whistleblowing Directive's clocks run, and the automatic acknowledgement's text
(docs/lifecycle.md "Auto-close and the statutory clocks")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from confide.durations import Duration, parse_duration
from confide.errors import ConfigError

CLOCK_SETS = frozenset({"eu-directive"})
ACKNOWLEDGEMENT_MAX = 10_000  # the length of any message (confide.models.MESSAGE_MAX)


@dataclass(frozen=True, slots=True)
class ClockRules:
    # None: threads are never closed for silence (``auto_close_after = "never"``).
    auto_close_after: Duration | None = Duration(days=14)
    clocks: frozenset[str] = frozenset()
    auto_acknowledgement: str = ""  # empty: no automatic acknowledgement

    @property
    def eu_directive(self) -> bool:
        return "eu-directive" in self.clocks

    def auto_close_at(
        self,
        *,
        anonymous: bool,
        closed: bool,
        last_caseworker_message_at: datetime | None,
        last_reporter_message_at: datetime | None,
    ) -> datetime | None:
        """When a thread closes for silence: an anonymous thread, not closed, whose last word
        is a case worker's; None otherwise (the rule of ``confide.sql.autoclose``)."""
        last = last_caseworker_message_at
        if self.auto_close_after is None or not anonymous or closed or last is None:
            return None
        if last_reporter_message_at is not None and last_reporter_message_at >= last:
            return None
        return self.auto_close_after.after(last)


def parse(section: object, where: str) -> ClockRules:
    """This part's keys of ``[lifecycle]``; other keys of the table belong to other rules."""
    if section is None:
        return ClockRules()
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: '[lifecycle]' must be a table")
    rules = ClockRules()
    after = section.get("auto_close_after")
    auto_close = rules.auto_close_after
    if after == "never":
        auto_close = None
    elif after is not None:
        auto_close = parse_duration(after, "lifecycle.auto_close_after", where)
    clocks = section.get("clocks", [])
    if not isinstance(clocks, list) or not set(clocks) <= CLOCK_SETS:
        raise ConfigError(f"{where}: 'lifecycle.clocks' must be [] or [\"eu-directive\"]")
    text = section.get("auto_acknowledgement", "")
    if not isinstance(text, str) or len(text.strip()) > ACKNOWLEDGEMENT_MAX:
        raise ConfigError(
            f"{where}: 'lifecycle.auto_acknowledgement' must be text of at most "
            f"{ACKNOWLEDGEMENT_MAX} characters"
        )
    return ClockRules(auto_close, frozenset(clocks), text.strip())


DEFAULT_RULES = ClockRules()  # what an organisation file without these keys gets
