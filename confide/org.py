"""The organisation file (``CONFIDE_ORG_FILE``, TOML): name, exit URL, region, hours, teams,
categories, the organisation's own support services, which staff roles must use a second
factor (``require_second_factor``), whether a passkey may replace the password
(``passkey_sign_in``), the lifecycle rules (``[lifecycle]``, docs/lifecycle.md) and the limits
for attached files (``[attachments]``)."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from confide.clock_rules import DEFAULT_RULES, ClockRules
from confide.clock_rules import parse as parse_clock_rules
from confide.durations import Duration as Duration
from confide.durations import parse_duration as parse_duration
from confide.errors import ConfigError
from confide.files.limits import AttachmentLimits, parse_limits

REGIONS = {"england-and-wales": ("ENG", "WLS"), "scotland": ("SCT",), "northern-ireland": ("NIR",)}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ]{1,30}$")


@dataclass(frozen=True)
class Team:
    slug: str
    name: str
    email: str


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    team: str
    retention: Duration | None = None  # None: [lifecycle] retention


@dataclass(frozen=True)
class Lifecycle:
    """``[lifecycle]`` (docs/lifecycle.md): how long a closed thread is kept, when a thread that
    was never closed is closed for inactivity, and how many working days ahead staff are warned.
    Other lifecycle keys (auto-close, clocks) are read by their own parsers."""

    retention: Duration = Duration(months=12)
    close_inactive_after: Duration = Duration(months=12)
    erasure_warning_days: int = 10
    by_category: dict[str, Duration] = field(default_factory=dict)

    def retention_for(self, category: str) -> Duration:
        return self.by_category.get(category, self.retention)


@dataclass(frozen=True)
class SupportService:
    """One of the organisation's own services, listed on the "I need help now" page."""

    name: str
    phone: str = ""  # as people read it ("0113 496 0000"); ``tel`` is the link's form
    url: str = ""  # https:// only
    description: str = ""

    @property
    def tel(self) -> str:
        return "tel:" + self.phone.replace(" ", "")


@dataclass(frozen=True)
class SsoProvision:
    """``[sso.provision]``: a verified e-mail address with no account gets one, with this role
    and team (roles never come from the identity provider)."""

    role: str
    team: str | None = None


@dataclass(frozen=True)
class SsoRules:
    """The ``[sso]`` table (docs/staff-sign-in.md "Single sign-on")."""

    password_sign_in: bool = True
    # Values meaning "signed in with more than one factor": the ID token's ``acr`` must be one of
    # require_acr, and its ``amr`` must hold one of require_amr (each only when set).
    require_acr: frozenset[str] = frozenset()
    require_amr: frozenset[str] = frozenset()
    provision: SsoProvision | None = None

    @property
    def requires_mfa(self) -> bool:
        return bool(self.require_acr or self.require_amr)


@dataclass(frozen=True)
class Organisation:
    name: str
    logo: str
    exit_url: str
    region: str
    timezone: ZoneInfo
    opens: time
    closes: time
    closure_days: frozenset[date]
    teams: tuple[Team, ...]
    categories: tuple[Category, ...]
    support_services: tuple[SupportService, ...] = ()
    # ``require_second_factor``: the roles that must use a second factor at sign-in; None when the
    # file does not say, so that the default follows CONFIDE_ENV ("all" in production, "none" in
    # development: confide.services.second_factor.required_roles).
    require_second_factor: frozenset[str] | None = None
    # ``passkey_sign_in = true``: a passkey may replace the password (a discoverable credential,
    # user verification required); otherwise a passkey is only the step after the password.
    passkey_sign_in: bool = False
    sso: SsoRules = SsoRules()
    lifecycle: Lifecycle = Lifecycle()
    # ``[lifecycle]``: auto-close, the statutory clocks, the automatic acknowledgement.
    clock_rules: ClockRules = DEFAULT_RULES
    # ``[attachments]``: files per report or message, their sizes and types (docs/attachments.md).
    attachments: AttachmentLimits = field(default_factory=AttachmentLimits)

    def category(self, slug: str) -> Category | None:
        return next((c for c in self.categories if c.slug == slug), None)


def load(path: Path) -> Organisation:
    where = "CONFIDE_ORG_FILE"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise ConfigError(f"{where}: cannot read {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None

    def text(key: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            raise ConfigError(f"{where}: '{key}' must be a non-empty string")
        return value.strip()

    exit_url = text("exit_url")
    if urlsplit(exit_url).scheme != "https":
        raise ConfigError(f"{where}: 'exit_url' must be an https:// address")
    region = text("region", "england-and-wales")
    if region not in REGIONS:
        raise ConfigError(f"{where}: 'region' must be one of {', '.join(REGIONS)}")
    try:
        tz = ZoneInfo(text("timezone", "Europe/London"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: 'timezone' is not a known time zone") from None
    hours = data.get("working_hours", {})
    try:
        opens = time.fromisoformat(str(hours.get("start", "09:00")))
        closes = time.fromisoformat(str(hours.get("end", "17:00")))
        closures = frozenset(date.fromisoformat(str(d)) for d in data.get("closure_days", []))
    except ValueError:
        raise ConfigError(
            f"{where}: working_hours and closure_days need HH:MM and YYYY-MM-DD"
        ) from None
    if opens >= closes:
        raise ConfigError(f"{where}: working_hours.start must be before working_hours.end")

    teams = []
    for slug, team in (data.get("teams") or {}).items():
        if not _SLUG.match(slug) or not isinstance(team, dict):
            raise ConfigError(f"{where}: team '{slug}' needs a lower-case slug and a table")
        teams.append(Team(slug, str(team.get("name") or slug), str(team.get("email") or "")))
    if not teams:
        raise ConfigError(f"{where}: define at least one [teams.<slug>]")
    team_slugs = {t.slug for t in teams}
    categories = []
    for item in data.get("categories") or []:
        slug, team = str(item.get("id", "")), str(item.get("team", ""))
        if not _SLUG.match(slug):
            raise ConfigError(f"{where}: category id '{slug}' must be a lower-case slug")
        if team not in team_slugs:
            raise ConfigError(f"{where}: category '{slug}' names unknown team '{team}'")
        retention = None
        if "retention" in item:
            retention = parse_duration(item["retention"], f"categories.{slug}.retention", where)
        categories.append(Category(slug, str(item.get("name") or slug), team, retention))
    if not categories:
        raise ConfigError(f"{where}: define at least one [[categories]]")
    if len({c.slug for c in categories}) != len(categories):
        raise ConfigError(f"{where}: category ids must be unique")
    return Organisation(
        name=text("name"),
        logo=str(data.get("logo") or ""),
        exit_url=exit_url,
        region=region,
        timezone=tz,
        opens=opens,
        closes=closes,
        closure_days=closures,
        teams=tuple(teams),
        categories=tuple(categories),
        support_services=_support_services(data.get("support"), where),
        require_second_factor=_second_factor_roles(data.get("require_second_factor"), where),
        passkey_sign_in=_flag(data.get("passkey_sign_in", False), "passkey_sign_in", where),
        sso=_sso_rules(data.get("sso"), where, team_slugs),
        lifecycle=_lifecycle(data.get("lifecycle"), where, categories),
        clock_rules=parse_clock_rules(data.get("lifecycle"), where),
        attachments=parse_limits(data.get("attachments"), where),
    )


@functools.cache
def cached(path: Path) -> Organisation:
    """The organisation file as loaded once per process (services that need its rules and
    have only the settings: the lifecycle pass, the submission's thread key)."""
    return load(path)


def _lifecycle(value: object, where: str, categories: list[Category]) -> Lifecycle:
    """``[lifecycle]``: retention, close_inactive_after, erasure_warning_days. Keys of the
    other lifecycle rules (auto_close_after, clocks, ...) are left to their parsers."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: '[lifecycle]' must be a table")
    retention = parse_duration(value.get("retention", "12 months"), "lifecycle.retention", where)
    inactive = parse_duration(
        value.get("close_inactive_after", "12 months"), "lifecycle.close_inactive_after", where
    )
    warning = value.get("erasure_warning_days", 10)
    if not isinstance(warning, int) or isinstance(warning, bool) or not 0 <= warning <= 250:
        raise ConfigError(f"{where}: 'lifecycle.erasure_warning_days' must be a whole number 0-250")
    by_category = {c.slug: c.retention for c in categories if c.retention is not None}
    return Lifecycle(retention, inactive, warning, by_category)


def _flag(value: object, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true or false")
    return value


SECOND_FACTOR_ROLES = ("caseworker", "manager", "admin", "ops")


def _second_factor_roles(value: object, where: str) -> frozenset[str] | None:
    """``require_second_factor = "all"``, ``"none"`` or a list of roles; None when absent."""
    if value is None:
        return None
    if value == "all":
        return frozenset(SECOND_FACTOR_ROLES)
    if value == "none":
        return frozenset()
    if isinstance(value, list) and all(v in SECOND_FACTOR_ROLES for v in value):
        return frozenset(value)
    raise ConfigError(
        f'{where}: \'require_second_factor\' must be "all", "none" or a list of roles '
        f"({', '.join(SECOND_FACTOR_ROLES)})"
    )


SSO_KEYS = frozenset({"password_sign_in", "require_acr", "require_amr", "provision"})


def _strings(value: object, name: str, where: str) -> frozenset[str]:
    """A string or a list of strings (``require_acr``, ``require_amr``)."""
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f"{where}: 'sso.{name}' must be a string or a list of strings")
    return frozenset(v.strip() for v in items)


def _sso_rules(value: object, where: str, teams: set[str]) -> SsoRules:
    """``[sso]``: password_sign_in, require_acr, require_amr and provision = {role, team}."""
    if value is None:
        return SsoRules()
    if not isinstance(value, dict) or not set(value) <= SSO_KEYS:
        raise ConfigError(f"{where}: '[sso]' may hold only {', '.join(sorted(SSO_KEYS))}")
    password = value.get("password_sign_in", True)
    if not isinstance(password, bool):
        raise ConfigError(f"{where}: 'sso.password_sign_in' must be true or false")
    return SsoRules(
        password_sign_in=password,
        require_acr=_strings(value.get("require_acr"), "require_acr", where),
        require_amr=_strings(value.get("require_amr"), "require_amr", where),
        provision=_provision(value.get("provision"), where, teams),
    )


def _provision(value: object, where: str, teams: set[str]) -> SsoProvision | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"role", "team"}:
        raise ConfigError(f"{where}: 'sso.provision' must be a table with role and team")
    role, team = value.get("role"), value.get("team")
    if role not in SECOND_FACTOR_ROLES:
        raise ConfigError(
            f"{where}: 'sso.provision.role' must be one of {', '.join(SECOND_FACTOR_ROLES)}"
        )
    if role == "ops" and team is not None:
        raise ConfigError(f"{where}: 'sso.provision.team' is refused for ops (no team)")
    if role in ("caseworker", "manager") and team is None:
        raise ConfigError(f"{where}: 'sso.provision.team' is required for role {role}")
    if team is not None and team not in teams:
        raise ConfigError(f"{where}: 'sso.provision.team' names unknown team '{team}'")
    return SsoProvision(str(role), None if team is None else str(team))


def _support_services(support: object, where: str) -> tuple[SupportService, ...]:
    """``[[support.services]]``: each with a name and a phone number, an https:// address, or
    both (optional: an organisation may list none)."""
    if support is None:
        return ()
    items = support.get("services", []) if isinstance(support, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{where}: 'support.services' must be a list of tables")
    services = []
    for item in items:
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each [[support.services]] must be a table")
        fields = {k: item.get(k, "") for k in ("name", "phone", "url", "description")}
        if not all(isinstance(v, str) for v in fields.values()):
            raise ConfigError(f"{where}: support.services fields must be strings")
        name, phone, url, description = (v.strip() for v in fields.values())
        if not name:
            raise ConfigError(f"{where}: each [[support.services]] needs a name")
        if not phone and not url:
            raise ConfigError(f"{where}: support service '{name}' needs a phone or a url")
        if phone and not _PHONE.match(phone):
            raise ConfigError(f"{where}: support service '{name}': phone must be digits and spaces")
        if url and (urlsplit(url).scheme != "https" or not urlsplit(url).netloc):
            raise ConfigError(f"{where}: support service '{name}': url must be https://")
        services.append(SupportService(name, phone, url, description))
    return tuple(services)
