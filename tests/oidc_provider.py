"""A small but real OpenID Connect provider for the single sign-on stories (tests/test_sso.py),
run as its own process: ``python -m tests.oidc_provider --port P --client-id C --client-secret S``.

It serves discovery, its keys (JWKS), an authorization endpoint that consents at once for the
person the test configured, and a token endpoint that checks the client's secret, the redirect
address and the PKCE verifier (S256) and uses each code once. ID tokens are signed RS256 with a
key made at start-up. The test says who signs in next, and how, with ``POST /_next`` (JSON):
``sub``, ``email``, ``email_verified``, ``name``, ``acr``, ``amr``, ``nonce`` (a wrong one to
send back), ``error`` (answer the authorization with this error instead).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

CODE_S = 60
_KEY = web.AppKey("key", RSAKey)
_STATE = web.AppKey("state", dict[str, Any])


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def issuer(request: web.Request) -> str:
    return str(request.app[_STATE]["issuer"])


async def discovery(request: web.Request) -> web.Response:
    base = issuer(request)
    return web.json_response(
        {
            "issuer": base,
            "authorization_endpoint": base + "/authorize",
            "token_endpoint": base + "/token",
            "jwks_uri": base + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
        }
    )


async def jwks(request: web.Request) -> web.Response:
    return web.json_response({"keys": [request.app[_KEY].as_dict(private=False)]})


async def set_next(request: web.Request) -> web.Response:
    request.app[_STATE]["next"] = await request.json()
    return web.json_response({"ok": True})


async def log(request: web.Request) -> web.Response:
    return web.json_response(request.app[_STATE]["log"])


async def authorize(request: web.Request) -> web.StreamResponse:
    state = request.app[_STATE]
    query = request.query
    state["log"].append({"authorize": dict(query)})
    if query.get("client_id") != state["client_id"] or query.get("response_type") != "code":
        return web.Response(status=400, text="unknown client or response type")
    if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
        return web.Response(status=400, text="PKCE S256 is required")
    if "openid" not in query.get("scope", "").split():
        return web.Response(status=400, text="not an OpenID Connect request")
    redirect = query["redirect_uri"]
    person = dict(state["next"])
    back: dict[str, str] = {"state": query.get("state", "")}
    if person.get("error"):
        back["error"] = str(person["error"])
    else:
        code = secrets.token_urlsafe(24)
        state["codes"][code] = {
            "challenge": query["code_challenge"],
            "redirect_uri": redirect,
            "nonce": person.pop("nonce", query.get("nonce")),
            "person": person,
            "at": time.time(),
        }
        back["code"] = code
    raise web.HTTPFound(redirect + ("&" if "?" in redirect else "?") + urlencode(back))


def _client(request: web.Request, form: Any) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if password == request.app[_STATE]["client_secret"] else None
    if form.get("client_secret") == request.app[_STATE]["client_secret"]:
        return str(form.get("client_id"))
    return None


async def token(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    form = await request.post()
    if _client(request, form) != state["client_id"]:
        return web.json_response({"error": "invalid_client"}, status=401)
    grant = state["codes"].pop(str(form.get("code", "")), None)  # each code works once
    if (
        grant is None
        or time.time() - grant["at"] > CODE_S
        or form.get("redirect_uri") != grant["redirect_uri"]
        or s256(str(form.get("code_verifier", ""))) != grant["challenge"]
    ):
        return web.json_response({"error": "invalid_grant"}, status=400)
    person = grant["person"]
    access = secrets.token_urlsafe(24)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": state["issuer"],
        "sub": person.get("sub", "person-1"),
        "aud": state["client_id"],
        "iat": now,
        "exp": now + 300,
        "at_hash": at_hash(access),
    }
    if grant["nonce"] is not None:
        claims["nonce"] = grant["nonce"]
    for name in ("email", "email_verified", "name", "acr", "amr"):
        if name in person:
            claims[name] = person[name]
    key = request.app[_KEY]
    id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)
    return web.json_response(
        {"access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
    )


def make_app(issuer_url: str, client_id: str, client_secret: str) -> web.Application:
    app = web.Application()
    app[_KEY] = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(4), "use": "sig"})
    app[_STATE] = {
        "issuer": issuer_url,
        "client_id": client_id,
        "client_secret": client_secret,
        "next": {"sub": "person-1", "email": "casey@example.org", "email_verified": True},
        "codes": {},
        "log": [],
    }
    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/jwks", jwks)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/token", token)
    app.router.add_post("/_next", set_next)
    app.router.add_get("/_log", log)
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    web.run_app(
        make_app(url, args.client_id, args.client_secret),
        host="127.0.0.1",
        port=args.port,
        print=None,
    )


if __name__ == "__main__":
    main()
