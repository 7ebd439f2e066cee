"""A reporter's journey through the question pages, as a browser without JavaScript makes it."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from tests import html


@dataclass
class Submitted:
    page: str
    status: int
    reference: str | None
    code: str | None
    check_form: html.Form


async def post(http: aiohttp.ClientSession, action: str, data: dict[str, str]) -> tuple[int, str]:
    async with http.post(action, data=data) as resp:
        return resp.status, await resp.text()


async def reach_check_answers(
    http: aiohttp.ClientSession,
    *,
    description: str,
    category: str = "safety",
    anonymous: bool = True,
    wants_replies: bool = True,
    occurred: str = "",
    location: str = "",
    name: str = "",
    email: str = "",
    phone: str = "",
) -> str:
    async with http.get("/report") as resp:
        page = await resp.text()
    steps = [
        {"how": "anonymous" if anonymous else "contact"},
        {"category": category},
        {"description": description},
        {"occurred": occurred},
        {"location": location},
        {"follow_up": "yes" if wants_replies else "no"}
        if anonymous
        else {"contact_name": name, "contact_email": email, "contact_phone": phone},
    ]
    for answers in steps:
        form = html.main_form(page)
        status, page = await post(http, form.action, form.data(**answers))
        assert status == 200, (status, html.text(page)[:500])
    assert html.title(page).startswith("Check your answers"), html.title(page)
    return page


async def send_report(http: aiohttp.ClientSession, check_page: str) -> Submitted:
    form = html.main_form(check_page)
    status, page = await post(http, form.action, form.fields)
    reference = None
    if "Report received" in page:
        import re

        match = re.search(r'class="reference">(R-[0-9A-Z]{8})<', page)
        reference = match.group(1) if match else None
    return Submitted(page, status, reference, html.code_on(page), form)


async def reporter_submits(
    http: aiohttp.ClientSession, description: str, **kw: object
) -> Submitted:
    check = await reach_check_answers(http, description=description, **kw)  # type: ignore[arg-type]
    return await send_report(http, check)


async def form_page(http: aiohttp.ClientSession, path: str) -> str:
    async with http.get(path) as resp:
        assert resp.status == 200, (path, resp.status)
        return await resp.text()


async def reporter_logs_in(http: aiohttp.ClientSession, code: str) -> tuple[int, str]:
    """Type the code on /login; returns the final status and page (after the redirect)."""
    page = await form_page(http, "/login")
    form = html.main_form(page)
    return await post(http, form.action, form.data(code=code))


async def reporter_sends(http: aiohttp.ClientSession, body: str) -> tuple[int, str]:
    page = await form_page(http, "/messages")
    form = next(f for f in html.forms(page) if f.action == "/messages")
    return await post(http, form.action, form.data(body=body))


async def reporter_logs_out(http: aiohttp.ClientSession) -> tuple[int, str]:
    page = await form_page(http, "/messages")
    form = next(f for f in html.forms(page) if f.action == "/logout")
    return await post(http, form.action, form.fields)


async def staff_logs_in(http: aiohttp.ClientSession, email: str, password: str) -> tuple[int, str]:
    page = await form_page(http, "/staff/login")
    form = html.main_form(page)
    return await post(http, form.action, form.data(email=email, password=password))


async def staff_acts(
    http: aiohttp.ClientSession, reference: str, action: str, **fields: str
) -> tuple[int, str]:
    """Submit one of the thread page's forms (reply, note, status, assign, restrict, team)."""
    page = await form_page(http, f"/staff/threads/{reference}")
    form = next(f for f in html.forms(page) if f.action.endswith(f"/{action}"))
    return await post(http, form.action, form.data(**fields))
