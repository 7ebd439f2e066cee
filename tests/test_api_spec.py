"""The OpenAPI document covers every API route, and every reference in it resolves."""

from __future__ import annotations

import json
import re

import aiohttp


async def test_openapi_document_lists_every_api_route(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/openapi.json") as resp:
        assert resp.status == 200
        spec = await resp.json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    from pathlib import Path

    from aiohttp import web

    from webapp.routes import setup  # the routes, as the app registers them

    app = web.Application()
    setup(app, Path(__file__).parent)
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        if (
            not path.startswith("/api/v1/")
            or path.endswith("openapi.json")
            or route.method == "HEAD"
        ):
            continue
        paths = [path]
        if path.endswith("/{action}"):
            actions = re.search(r"\(\?P<action>([a-z|]+)\)", info["pattern"].pattern)
            assert actions is not None
            paths = [path.replace("{action}", a) for a in actions.group(1).split("|")]
        for one in paths:
            assert (one, route.method) in documented, (one, route.method)
    text = json.dumps(spec)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([A-Za-z]+)"', text)):
        assert ref in spec["components"]["schemas"], ref
