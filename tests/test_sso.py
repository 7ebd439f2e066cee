"""Staff single sign-on (issue 15 item 5): stories through a real OpenID Connect provider,
``tests/oidc_provider.py``, run as its own process, and Confide web processes set up for it.

- ``sso_web``: the demo organisation with SSO beside passwords, Confide's own second factor
  applying after SSO.
- ``sso_only_web``: an organisation that signs in through SSO only, requires an ``acr`` meaning
  multi-factor, and provisions verified newcomers as case workers in the safety team.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser

from confide import devservices
from confide.settings import DEFAULT_ORG_FILE
from tests import html
from tests.conftest import Proc, Stack, StaffAccount, add_staff, confide_cli, wait_http
from tests.journeys import form_page, post, staff_logs_in
from tests.test_browser import Auditor, browser, on_a_phone
from tests.test_second_factor import api_session, enrols, jar_client, next_code, problem_type

__all__ = ["browser"]  # the session's Chromium (tests/test_browser.py)

CLIENT_ID = "confide-staff"
CLIENT_SECRET = "test-client-secret-7f3a9c"
MFA_ACR = "urn:confide:test:mfa"
REFRESH = re.compile(r'<meta http-equiv="refresh" content="0; url=([^"]+)">')


@dataclass
class Provider:
    url: str
    proc: Proc

    async def next_sign_in(self, **person: Any) -> None:
        """Who the provider signs in next, and how (tests/oidc_provider.py ``/_next``)."""
        body = {"sub": "casey-sub", "email": "casey@example.org", "email_verified": True}
        body.update(person)
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url + "/_next", json=body) as resp,
        ):
            assert resp.status == 200

    async def requests(self) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(self.url + "/_log") as resp:
            found: list[dict[str, Any]] = await resp.json()
            return found


def start_web(stack: Stack, name: str, **overrides: str) -> tuple[Proc, str]:
    """A Confide web process whose CONFIDE_BASE_URL is its own address (the redirect URI)."""
    port = devservices.free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(stack.env, PORT=str(port), CONFIDE_BASE_URL=base, **overrides)
    proc = Proc(name, [sys.executable, "-m", "webapp"], env, stack.artifacts / f"{name}.log")
    proc.start()
    stack.extra.append(proc)
    wait_http(base + "/healthz", proc)
    return proc, base


def oidc_env(issuer: str) -> dict[str, str]:
    return {
        "CONFIDE_OIDC_ISSUER": issuer,
        "CONFIDE_OIDC_CLIENT_ID": CLIENT_ID,
        "CONFIDE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
    }


@pytest.fixture(scope="module")
def provider(stack: Stack) -> Iterator[Provider]:
    port = devservices.free_port()
    proc = Proc(
        "oidc-provider",
        [
            sys.executable,
            "-m",
            "tests.oidc_provider",
            "--port",
            str(port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
        ],
        stack.env,
        stack.artifacts / "oidc-provider.log",
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz", proc)
    yield Provider(url, proc)
    proc.stop()


@pytest.fixture(scope="module")
def sso_web(stack: Stack, provider: Provider) -> Iterator[str]:
    proc, base = start_web(stack, "web-sso", **oidc_env(provider.url))
    yield base
    proc.stop()


@pytest.fixture(scope="module")
def sso_only_web(
    stack: Stack, provider: Provider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    org = tmp_path_factory.mktemp("sso-org") / "org.toml"
    org.write_text(
        Path(DEFAULT_ORG_FILE).read_text()
        + f"""
[sso]
password_sign_in = false
require_acr = ["{MFA_ACR}"]
provision = {{ role = "caseworker", team = "safety" }}
"""
    )
    proc, base = start_web(
        stack, "web-sso-only", CONFIDE_ORG_FILE=str(org), **oidc_env(provider.url)
    )
    yield base
    proc.stop()


@pytest.fixture
async def browser_client(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


async def signs_in_through_sso(http: aiohttp.ClientSession, base: str) -> tuple[int, str]:
    """Press "Sign in with <organisation>" and follow the provider's redirects back, then the
    page that goes on from Confide (as a browser follows its refresh)."""
    login = await get(http, base + "/staff/login")
    assert 'href="/staff/sso/start"' in login
    async with http.get(base + "/staff/sso/start") as resp:
        status, page = resp.status, await resp.text()
    found = REFRESH.search(page)
    if status != 200 or not found:
        return status, page
    assert found.group(1).startswith("/staff")  # never off-site
    async with http.get(base + found.group(1)) as resp:
        return resp.status, await resp.text()


async def sso_sign_in(provider: Provider, base: str, **person: Any) -> tuple[int, str]:
    """A fresh browser signs in through the provider, which answers for ``person`` this time."""
    await provider.next_sign_in(**person)
    async with jar_client(base) as http:
        return await signs_in_through_sso(http, base)


async def sso_failures(db: asyncpg.Connection) -> list[str]:
    """The details of the ``sso_failed`` audit rows, in order."""
    return [r["detail"] for r in await audit(db, "sso_failed")]


async def get(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        assert resp.status == 200, (url, resp.status)
        return await resp.text()


async def audit(db: asyncpg.Connection, action: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT staff_id, detail::text AS detail FROM audit_log WHERE action = $1 ORDER BY id",
        action,
    )
    return [dict(r) for r in rows]


async def test_caseworker_can_sign_in_through_the_provider_and_reach_the_inbox(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    provider: Provider,
    sso_web: str,
    browser_client: aiohttp.ClientSession,
) -> None:
    await provider.next_sign_in(sub="casey-sub", email="Casey@Example.org")
    status, inbox = await signs_in_through_sso(browser_client, sso_web)
    assert status == 200 and "inbox" in html.title(inbox), html.text(inbox)[:300]
    assert "casey@example.org" in inbox  # the menu names the account

    # What went to the provider: the code flow with PKCE S256, a state and a nonce.
    sent = (await provider.requests())[-1]["authorize"]
    assert sent["response_type"] == "code" and sent["code_challenge_method"] == "S256"
    assert len(sent["state"]) >= 40 and len(sent["nonce"]) >= 40
    assert sent["redirect_uri"] == sso_web + "/staff/sso/callback"
    assert "openid" in sent["scope"].split() and "code_verifier" not in sent

    bound = await db.fetchrow("SELECT issuer, subject, staff_id FROM staff_identities")
    assert bound is not None and (bound["issuer"], bound["subject"]) == (provider.url, "casey-sub")
    session = await db.fetchrow("SELECT methods FROM sessions WHERE pending_step IS NULL")
    assert session is not None and list(session["methods"]) == ["sso"]
    # The sessions page says how it signed in; the attempt was used and is gone.
    sessions_page = await get(browser_client, sso_web + "/staff/sessions")
    assert "Single sign-on" in sessions_page
    assert await db.fetchval("SELECT count(*) FROM sso_attempts") == 0
    # Audited, with no token, code, e-mail address or subject.
    (signed_in,) = await audit(db, "sso_sign_in")
    (linked,) = await audit(db, "sso_identity_bound")
    assert signed_in["staff_id"] == linked["staff_id"] == bound["staff_id"]
    for row in (signed_in, linked):
        assert "@" not in row["detail"] and "casey-sub" not in row["detail"]
    # The callback cannot be replayed: its attempt was used once.
    callback = next(
        r["authorize"] for r in await provider.requests() if "authorize" in r
    )  # any earlier one is as dead
    async with browser_client.get(
        sso_web + "/staff/sso/callback?" + urlencode({"state": callback["state"], "code": "x"})
    ) as resp:
        assert resp.status == 400


async def test_second_sign_in_matches_the_identity_even_after_the_email_changes(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    provider: Provider,
    sso_web: str,
) -> None:
    status, _ = await sso_sign_in(provider, sso_web, sub="casey-sub", email=caseworker.email)
    assert status == 200
    # The provider now gives Casey another address: the account is found by iss + sub.
    status, inbox = await sso_sign_in(
        provider, sso_web, sub="casey-sub", email="c.renamed@example.org"
    )
    assert status == 200 and "inbox" in html.title(inbox)
    assert caseworker.email in inbox
    # Someone else at the provider with Casey's address is not let into Casey's account.
    status, page = await sso_sign_in(provider, sso_web, sub="someone-else", email=caseworker.email)
    assert status == 403 and "linked to another person" in html.text(page)
    assert await db.fetchval("SELECT count(*) FROM staff_identities") == 1


async def test_tampered_state_and_nonce_are_refused_with_a_clear_page(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    provider: Provider,
    sso_web: str,
) -> None:
    # A state changed on the way: the provider sends it back, Confide does not know it.
    await provider.next_sign_in()
    async with jar_client(sso_web) as http:
        async with http.get("/staff/sso/start", allow_redirects=False) as resp:
            assert resp.status == 303
            location = resp.headers["Location"]
        parts = urlsplit(location)
        query = dict(parse_qsl(parts.query))
        query["state"] = query["state"][:-4] + "AAAA"
        async with http.get(urlunsplit(parts._replace(query=urlencode(query)))) as resp:
            page = await resp.text()
            assert resp.status == 400, html.text(page)[:300]
        assert "Single sign-on did not work" in html.title(page)
        assert "was not started in this browser" in html.text(page)
        assert "Traceback" not in page
    # A callback in a browser that did not start the sign-in (no cookie) is refused alike.
    await provider.next_sign_in()
    async with jar_client(sso_web) as http:
        async with http.get("/staff/sso/start", allow_redirects=False) as resp:
            location = resp.headers["Location"]
        async with aiohttp.ClientSession() as other, other.get(location) as resp:
            assert resp.status == 400
    # A nonce that is not this sign-in's, and none at all.
    for nonce in ("not-the-nonce-we-sent", None):
        status, page = await sso_sign_in(provider, sso_web, nonce=nonce)
        assert status == 400 and "could not be checked" in html.text(page)
    reasons = await sso_failures(db)
    assert reasons == [
        '{"reason": "state"}',
        '{"reason": "state"}',
        '{"reason": "nonce"}',
        '{"reason": "nonce"}',
    ]
    assert await db.fetchval("SELECT count(*) FROM sessions") == 0


async def test_unverified_unknown_and_disabled_accounts_are_each_refused(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    provider: Provider,
    sso_web: str,
) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"email_verified": False}, 403, "did not confirm your email address"),
        ({"email": "nobody@example.org"}, 403, "There is no staff account"),
        ({"error": "access_denied"}, 403, "did not sign you in"),
    ]
    for person, status_expected, words in cases:
        status, page = await sso_sign_in(provider, sso_web, **person)
        assert status == status_expected, (person, status, html.text(page)[:300])
        assert words in html.text(page)
        assert 'href="/staff/login"' in page
    # A bound account that is then disabled; and one disabled before its first SSO sign-in.
    assert (await sso_sign_in(provider, sso_web))[0] == 200
    other = add_staff(stack, "robin@example.org", "safety")
    for email in (caseworker.email, other.email):
        assert confide_cli(stack, "staff", "disable", "--email", email).returncode == 0
    for sub, email in (("casey-sub", caseworker.email), ("robin-sub", other.email)):
        status, page = await sso_sign_in(provider, sso_web, sub=sub, email=email)
        assert status == 403 and "switched off" in html.text(page)
    reasons = await sso_failures(db)
    assert reasons == [
        '{"reason": "email_unverified"}',
        '{"reason": "unknown_email"}',
        '{"error": "access_denied", "reason": "idp_error"}',
        '{"reason": "disabled"}',
        '{"reason": "disabled"}',
    ]
    assert await db.fetchval("SELECT count(*) FROM staff_identities") == 1


async def test_confides_own_second_factor_still_applies_after_sso(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    provider: Provider,
    sso_web: str,
) -> None:
    async with jar_client(sso_web) as http:
        assert (await staff_logs_in(http, caseworker.email, caseworker.password))[0] == 200
        totp, _, _ = await enrols(http)
    await provider.next_sign_in()
    async with jar_client(sso_web) as http:
        status, page = await signs_in_through_sso(http, sso_web)
        assert status == 200 and "Enter your sign-in code" in page
        async with http.get("/staff", allow_redirects=False) as resp:
            assert resp.status == 303  # half signed in: nothing else opens
        form = html.main_form(page)
        status, inbox = await post(http, form.action, form.data(code=next_code(totp)))
        assert status == 200 and "inbox" in html.title(inbox)
    methods = await db.fetchval(
        "SELECT methods FROM sessions WHERE pending_step IS NULL AND 'sso' = ANY (methods)"
    )
    assert list(methods) == ["sso", "totp"]


async def test_sso_only_organisation_requires_the_acr_and_refuses_passwords(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    provider: Provider,
    sso_only_web: str,
) -> None:
    # The login page offers only the organisation's sign-in.
    async with jar_client(sso_only_web) as http:
        login = await form_page(http, "/staff/login")
        assert "Sign in with Northbridge University (demo)" in login
        assert 'type="password"' not in login
        # A password POST (a form kept from before) is refused with a clear page.
        token = re.search(r'name="form_token" value="([^"]+)"', login)
        assert token is None  # the page has no password form to post
        async with jar_client(stack.base_url) as plain:
            form = html.main_form(await form_page(plain, "/staff/login"))
        status, page = await post(
            http, "/staff/login", form.data(email=caseworker.email, password=caseworker.password)
        )
        assert status == 401 and "Passwords are not used here" in html.text(page)
    # The API answers as CONTRACTS §3 says, whatever the password; a personal access token works.
    status, body, _ = await api_session(
        sso_only_web, {"email": caseworker.email, "password": caseworker.password}
    )
    assert status == 401 and problem_type(body) == "password-sign-in-disabled"
    issued = confide_cli(stack, "tokens", "issue", "--email", caseworker.email, "--name", "n")
    assert issued.returncode == 0
    async with (
        aiohttp.ClientSession(base_url=sso_only_web) as http,
        http.get(
            "/api/v1/staff/threads",
            headers={"Authorization": "Bearer " + issued.stdout.strip()},
        ) as resp,
    ):
        assert resp.status == 200

    # No acr meaning multi-factor: refused. With it: signed in, the second factor counted.
    status, page = await sso_sign_in(provider, sso_only_web)
    assert status == 403 and "second factor" in html.text(page)
    assert (await provider.requests())[-1]["authorize"]["acr_values"] == MFA_ACR
    status, inbox = await sso_sign_in(provider, sso_only_web, acr=MFA_ACR)
    assert status == 200 and "inbox" in html.title(inbox)
    methods = await db.fetchval("SELECT methods FROM sessions WHERE token_name IS NULL")
    assert list(methods) == ["sso", "sso_mfa"]
    assert await sso_failures(db) == ['{"reason": "mfa_missing"}']


async def test_sso_only_organisation_provisions_a_verified_newcomer_with_its_own_role(
    stack: Stack, db: asyncpg.Connection, provider: Provider, sso_only_web: str
) -> None:
    newcomer = {"sub": "newcomer", "email": "new.person@example.org", "name": "New Person"}
    status, inbox = await sso_sign_in(provider, sso_only_web, **newcomer, acr=MFA_ACR)
    assert status == 200 and "inbox" in html.title(inbox)
    row = await db.fetchrow(
        "SELECT s.role, s.password_hash, t.slug FROM staff s JOIN staff_teams st ON "
        "st.staff_id = s.id JOIN teams t ON t.id = st.team_id WHERE s.email = $1",
        "new.person@example.org",
    )
    assert row is not None and (row["role"], row["slug"]) == ("caseworker", "safety")
    assert row["password_hash"] is None
    (linked,) = await audit(db, "sso_identity_bound")
    assert '"provisioned": true' in linked["detail"]
    # An unverified address is never provisioned.
    unverified = {"sub": "x", "email": "x@example.org", "email_verified": False, "acr": MFA_ACR}
    assert (await sso_sign_in(provider, sso_only_web, **unverified))[0] == 403
    assert await db.fetchval("SELECT count(*) FROM staff WHERE email = 'x@example.org'") == 0


async def test_an_unreachable_provider_gets_a_clear_page(
    stack: Stack, db: asyncpg.Connection
) -> None:
    proc, base = start_web(
        stack, "web-sso-down", **oidc_env(f"http://127.0.0.1:{devservices.free_port()}")
    )
    try:
        async with jar_client(base) as http, http.get("/staff/sso/start") as resp:
            page = await resp.text()
            assert resp.status == 502
            assert "did not answer" in html.text(page) and 'href="/staff/login"' in page
    finally:
        proc.stop()


async def test_a_flood_of_sso_starts_from_one_client_gets_429(stack: Stack) -> None:
    """Each start stores a short-lived attempt: one client may start as many sign-ins as it may
    try passwords (CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN), then waits."""
    proc, base = start_web(
        stack,
        "web-sso-flood",
        CONFIDE_STAFF_LOGIN_PER_CLIENT_PER_15MIN="3",
        **oidc_env(f"http://127.0.0.1:{devservices.free_port()}"),
    )
    try:
        statuses = []
        async with jar_client(base) as http:
            for _ in range(4):
                async with http.get("/staff/sso/start", allow_redirects=False) as resp:
                    statuses.append(resp.status)
                    retry_after = resp.headers.get("Retry-After")
        assert statuses == [502, 502, 502, 429]
        assert retry_after is not None and int(retry_after) > 0
    finally:
        proc.stop()


async def test_sso_in_a_real_browser_and_its_pages_pass_axe(
    stack: Stack,
    db: asyncpg.Connection,
    caseworker: StaffAccount,
    provider: Provider,
    sso_web: str,
    sso_only_web: str,
    browser: Browser,
) -> None:
    auditor = Auditor(browser, sso_web)
    context = await on_a_phone(browser, sso_web, js=True)
    try:
        page = await context.new_page()
        await page.goto("/staff/login")
        await auditor.check(page, js=True)
        await provider.next_sign_in()
        # Through the provider and back: the SameSite=Strict staff cookie holds on.
        await page.get_by_role("link", name="Sign in with Northbridge University (demo)").click()
        await page.wait_for_url(sso_web + "/staff")
        assert "inbox" in (await page.title())
        await provider.next_sign_in(email="nobody@example.org", sub="nobody")
        await page.goto("/staff/sso/start")
        assert "Single sign-on did not work" in await page.title()
        await auditor.check(page, js=True)
        # The page that goes on after the provider, audited as served (without its refresh).
        await provider.next_sign_in()
        async with jar_client(sso_web) as http, http.get("/staff/sso/start") as resp:
            continue_page = await resp.text()
        snapshot = await context.new_page()
        await snapshot.route(
            sso_web + "/__continue__",
            lambda route: route.fulfill(
                body=REFRESH.sub("", continue_page), content_type="text/html"
            ),
        )
        await snapshot.goto(sso_web + "/__continue__")
        await auditor.check(snapshot, js=False)
    finally:
        await context.close()
    only = await on_a_phone(browser, sso_only_web, js=False)
    try:
        page = await only.new_page()
        await page.goto("/staff/login")
        await Auditor(browser, sso_only_web).check(page, js=False)
    finally:
        await only.close()
    assert len(auditor.audited) == 3


def test_sso_settings_need_all_three_and_the_org_rules_are_checked(tmp_path: Path) -> None:
    from confide import org as org_file
    from confide.errors import ConfigError
    from confide.settings import Settings
    from tests.test_codes_and_settings import env

    with pytest.raises(ConfigError, match="CONFIDE_OIDC_CLIENT_SECRET is not set"):
        Settings.from_env(
            env(tmp_path, CONFIDE_OIDC_ISSUER="https://idp.example", CONFIDE_OIDC_CLIENT_ID="c")
        )
    settings = Settings.from_env(env(tmp_path, **oidc_env("https://idp.example/tenant")))
    assert settings.oidc is not None and settings.oidc.issuer == "https://idp.example/tenant"
    assert CLIENT_SECRET not in repr(settings)
    with pytest.raises(ConfigError, match="CONFIDE_OIDC_ISSUER must be"):
        Settings.from_env(env(tmp_path, **oidc_env("ftp://idp.example")))
    base = Path(DEFAULT_ORG_FILE).read_text()
    for table, words in (
        ("[sso]\npassword_sign_in = 'no'\n", "password_sign_in"),
        ("[sso]\nprovision = { role = 'admin-ish' }\n", "provision.role"),
        ("[sso]\nprovision = { role = 'caseworker' }\n", "team' is required"),
        ("[sso]\nprovision = { role = 'caseworker', team = 'nope' }\n", "unknown team"),
        ("[sso]\nroles_from_idp = true\n", "may hold only"),
    ):
        path = tmp_path / "org.toml"
        path.write_text(base + "\n" + table)
        with pytest.raises(ConfigError, match=words):
            org_file.load(path)
