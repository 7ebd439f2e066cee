"""The organisation's OpenID Connect provider, as Confide's staff single sign-on reaches it:
discovery (cached), its signing keys (cached, fetched again for a key id it does not know), the
token endpoint, and the ID token checked by signature (joserfc) and claims (authlib).

Nothing here logs or keeps a token, a code or a claim; failures are named by a reason word.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from confide.errors import ConfideError
from confide.settings import OidcClient

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TTL_S = 3600  # the provider's endpoints and keys are read again after an hour
KEYS_REFETCH_S = 60  # an unknown key id fetches the keys again at most once a minute
TIMEOUT_S = 10
LEEWAY_S = 60  # clock skew allowed on exp and iat
MAX_ANSWER = 256 * 1024  # no provider document is larger
# Asymmetric signatures only: a token signed with the client secret (HS256) or none is refused.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


class ProviderUnavailable(ConfideError):
    """The provider did not answer, or answered something that is not OpenID Connect."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "provider_unreachable" or "provider_answer"


class TokenRefused(ConfideError):
    """The token endpoint refused the code, or the ID token does not verify."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "code", "id_token" or "nonce"


@dataclass(frozen=True)
class Metadata:
    """What Confide uses of the discovery document."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    client_secret_post: bool  # the provider takes the secret in the body, not Basic auth


class Provider:
    """One per web process: its HTTP client and caches live as long as the app."""

    def __init__(self, client: OidcClient) -> None:
        self.client = client
        self._http: aiohttp.ClientSession | None = None
        self._metadata: tuple[float, Metadata] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), raise_for_status=False
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _json(
        self, method: str, url: str, **kw: Any
    ) -> tuple[int, dict[str, Any]]:  # Any: JSON
        assert self._http is not None, "Provider.start() first"
        try:
            async with self._http.request(method, url, allow_redirects=False, **kw) as resp:
                body = await resp.content.read(MAX_ANSWER + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            raise ProviderUnavailable("provider_unreachable") from None
        if len(body) > MAX_ANSWER:
            raise ProviderUnavailable("provider_answer")
        try:
            data = json.loads(body)
        except ValueError:
            raise ProviderUnavailable("provider_answer") from None
        if not isinstance(data, dict):
            raise ProviderUnavailable("provider_answer")
        return status, data

    async def metadata(self) -> Metadata:
        """The discovery document's endpoints, read at most once an hour."""
        cached = self._metadata
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
            return cached[1]
        async with self._lock:
            cached = self._metadata
            if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
                return cached[1]
            url = self.client.issuer.rstrip("/") + DISCOVERY_PATH
            status, doc = await self._json("GET", url)
            found = _metadata(self.client, status, doc)
            self._metadata = (time.monotonic(), found)
            return found

    async def keys(self, *, refresh: bool = False) -> KeySet:
        cached = self._keys
        if cached is not None and not refresh and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
            return cached[1]
        if cached is not None and refresh and time.monotonic() - cached[0] < KEYS_REFETCH_S:
            return cached[1]
        status, doc = await self._json("GET", (await self.metadata()).jwks_uri)
        try:
            if status != 200:
                raise ValueError(status)
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise ProviderUnavailable("provider_answer") from None
        self._keys = (time.monotonic(), keys)
        return keys

    async def exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token endpoint's answer for this code and PKCE verifier."""
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        headers = {"Accept": "application/json"}
        secret = self.client.client_secret.get()
        if meta.client_secret_post:
            form.update(client_id=self.client.client_id, client_secret=secret)
        else:  # RFC 6749 §2.3.1: each part form-encoded, then Basic
            pair = f"{quote(self.client.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        status, answer = await self._json("POST", meta.token_endpoint, data=form, headers=headers)
        if 400 <= status < 500:
            raise TokenRefused("code")  # a used, expired or forged code, or a wrong verifier
        if status != 200 or not isinstance(answer.get("id_token"), str):
            raise ProviderUnavailable("provider_answer")
        return answer

    async def verify_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        """The ID token's claims, once its signature (a key of the provider's), issuer,
        audience, expiry, nonce and at_hash are right; TokenRefused otherwise."""
        meta = await self.metadata()
        try:
            token = jwt.decode(id_token, await self.keys(), algorithms=meta.algorithms)
        except JoseError:
            try:  # the provider may have rolled its keys since we read them
                token = jwt.decode(
                    id_token, await self.keys(refresh=True), algorithms=meta.algorithms
                )
            except (JoseError, ValueError):
                raise TokenRefused("id_token") from None
        except ValueError:
            raise TokenRefused("id_token") from None
        claims = CodeIDToken(
            token.claims,
            token.header,
            options={
                "iss": {"essential": True, "value": self.client.issuer},
                "aud": {"essential": True, "value": self.client.client_id},
                "sub": {"essential": True},
            },
            params={
                "nonce": nonce,
                "client_id": self.client.client_id,
                "access_token": access_token,
            },
        )
        try:
            claims.validate(now=int(time.time()), leeway=LEEWAY_S)
        except JoseError as exc:
            raise TokenRefused(
                "nonce" if getattr(exc, "claim", "") == "nonce" else "id_token"
            ) from None
        if not isinstance(claims.get("sub"), str) or not 1 <= len(claims["sub"]) <= 255:
            raise TokenRefused("id_token")
        return dict(claims)


def _metadata(client: OidcClient, status: int, doc: Mapping[str, Any]) -> Metadata:
    """OpenID Connect Discovery §4.3: the document names exactly our issuer, and its
    endpoints; the signing algorithms we accept are those it offers of ours."""
    if status != 200 or doc.get("issuer") != client.issuer:
        raise ProviderUnavailable("provider_answer")
    endpoints = [doc.get(k) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
    if not all(isinstance(e, str) and e.startswith(("https://", "http://")) for e in endpoints):
        raise ProviderUnavailable("provider_answer")
    offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = tuple(a for a in SIGNING_ALGORITHMS if a in offered)
    if not algorithms:
        raise ProviderUnavailable("provider_answer")
    methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    return Metadata(
        str(endpoints[0]),
        str(endpoints[1]),
        str(endpoints[2]),
        algorithms,
        client_secret_post="client_secret_basic" not in methods and "client_secret_post" in methods,
    )
