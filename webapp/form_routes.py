"""What each unsafe HTML route declares about its form: the token it must carry, and the page
that is drawn again, with what was typed, when the token is refused or a service raises.

The declarations sit beside the URLs in ``webapp.routes`` (``FORMS``, keyed by route name) and
are read by two middlewares: ``webapp.policy`` checks the token before any handler runs, and
``webapp.errors`` asks the route's page to draw itself for a refusal or a domain error. A route
that declares nothing is refused (docs/security.md "Where the form checks live"), so a form added
later cannot go without a check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from aiohttp import web


class Token(Enum):
    """The token an unsafe HTML route's form must carry."""

    STAFF_SESSION = "the staff session's CSRF token (csrf_token)"
    REPORTER_SESSION = "the reporter session's CSRF token (csrf_token)"
    SIGNED = "a signed form token for the route's purpose (form_token)"
    SERVICE = "a secret of its own that the service checks (say which in why)"
    NONE = "nothing: the route writes nothing (say why)"


# Draws the route's page again for ``exc`` with ``status``, or None for the plain error page.
FormPage = Callable[
    [web.Request, dict[str, str], Exception, int], Awaitable[web.StreamResponse | None]
]


@dataclass(frozen=True)
class Form:
    token: Token
    # Token.SIGNED: the purpose its token is signed for; None when the browser sent no cookie
    # that the purpose is bound to (the reporter login, docs/security.md "Login CSRF").
    purpose: Callable[[web.Request], str | None] | None = None
    page: FormPage | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if (self.token is Token.SIGNED) != (self.purpose is not None):
            raise ValueError("a signed form token needs a purpose, and only it")
        if self.token in (Token.SERVICE, Token.NONE) and not self.why:
            raise ValueError(f"{self.token.name} needs a reason")


FORMS = web.AppKey("forms", dict[str, Form])


def declared(request: web.Request) -> Form | None:
    """The form declaration of the route this request matched, if any."""
    return request.app.get(FORMS, {}).get(request.match_info.route.name or "")


class FormRefused(Exception):
    """The form lacks the token its route declares (refused by ``webapp.policy``)."""

    status = 403

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CsrfRefused(FormRefused):
    """A cookie session's form without that session's CSRF token: a 403 page."""


class TokenRefused(FormRefused):
    """A signed form token that is missing, forged, expired or for another form (400): the
    route's page says "expired" and keeps what was typed. ``no_cookie``: the browser did not
    send back the cookie the token is bound to."""

    status = 400

    def __init__(self, *, no_cookie: bool = False) -> None:
        super().__init__("The page had expired.")
        self.no_cookie = no_cookie
