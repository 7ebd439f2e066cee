"""The OpenAPI document covers every API route, and every reference in it resolves."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
from openapi_spec_validator import validate


async def test_openapi_document_lists_every_api_route(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/openapi.json") as resp:
        assert resp.status == 200
        spec = await resp.json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
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


BEFORE = Path(__file__).parent / "data" / "openapi-before.json"
"""The hand-written document as it was before it was generated from the models (issue 13)."""


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _options(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a schema: its ``anyOf``/``oneOf`` members, resolved, or itself."""
    schema = _resolve(doc, schema)
    members = schema.get("anyOf") or schema.get("oneOf")
    if not members:
        return [schema]
    return [option for m in members for option in _options(doc, m)]


def _types(doc: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for option in _options(doc, schema):
        kind = option.get("type")
        if kind is None and "enum" in option:
            kind = sorted({type(v).__name__ for v in option["enum"]})
        if kind is None and "properties" in option:
            kind = "object"
        found.update([kind] if isinstance(kind, str) else kind or [])
    return {{"str": "string", "bool": "boolean", "NoneType": "null"}.get(t, t) for t in found}


def _same_meaning(
    old_doc: dict[str, Any],
    new_doc: dict[str, Any],
    old: dict[str, Any],
    new: dict[str, Any],
    where: str,
    *,
    request: bool,
) -> list[str]:
    """What the old schema promised that the new one does not: a lost property, type, enum,
    format, limit or required field. A request may accept more (e.g. null); an answer may not
    send anything the old document did not allow, beyond new properties."""
    problems = []
    old_types, new_types = _types(old_doc, old), _types(new_doc, new)
    if not (old_types <= new_types if request else new_types <= old_types or not old_types):
        problems.append(f"{where}: types {sorted(old_types)} -> {sorted(new_types)}")
    old_options = [o for o in _options(old_doc, old) if o.get("type") != "null"]
    new_options = [o for o in _options(new_doc, new) if o.get("type") != "null"]
    for old_one in old_options:
        candidates = [n for n in new_options if _types(new_doc, n) & _types(old_doc, old_one)]
        if not candidates:
            continue  # reported as a type change above
        new_one = candidates[0]
        for key in ("enum", "format", "pattern", "minLength", "maxLength", "minimum"):
            if key in old_one and old_one[key] != new_one.get(key):
                problems.append(f"{where}: {key} {old_one[key]!r} -> {new_one.get(key)!r}")
        refused = old_one.get("additionalProperties") is False
        if request and refused and new_one.get("additionalProperties") is not False:
            problems.append(f"{where}: unknown fields were refused")
        old_required = set(old_one.get("required", []))
        new_required = set(new_one.get("required", []))
        if request and old_required != new_required:
            problems.append(f"{where}: required {sorted(old_required)} -> {sorted(new_required)}")
        if not request and not old_required <= new_required:
            problems.append(f"{where}: no longer always sent {sorted(old_required - new_required)}")
        for name, old_property in old_one.get("properties", {}).items():
            new_property = new_one.get("properties", {}).get(name)
            if new_property is None:
                problems.append(f"{where}.{name}: gone")
                continue
            problems += _same_meaning(
                old_doc, new_doc, old_property, new_property, f"{where}.{name}", request=request
            )
        if "items" in old_one:
            problems += _same_meaning(
                old_doc,
                new_doc,
                old_one["items"],
                new_one.get("items", {}),
                f"{where}[]",
                request=request,
            )
    return problems


def _changes(old_doc: dict[str, Any], new_doc: dict[str, Any]) -> list[str]:
    problems = []
    for path, operations in old_doc["paths"].items():
        for method, old in operations.items():
            new = new_doc["paths"].get(path, {}).get(method)
            here = f"{method.upper()} {path}"
            if new is None:
                problems.append(f"{here}: gone")
                continue
            for key in ("operationId", "security"):
                if key in old and old[key] != new.get(key):
                    problems.append(f"{here}: {key} {old[key]!r} -> {new.get(key)!r}")
            new_parameters = {(p["name"], p["in"]): p for p in new.get("parameters", [])}
            for p in old.get("parameters", []):
                q = new_parameters.get((p["name"], p["in"]))
                if q is None or q.get("required", False) != p.get("required", False):
                    problems.append(f"{here}: parameter {p['name']} gone or changed")
                else:
                    problems += _same_meaning(
                        old_doc,
                        new_doc,
                        p["schema"],
                        q["schema"],
                        f"{here} {p['name']}",
                        request=True,
                    )
            if "requestBody" in old:
                old_body, new_body = old["requestBody"], new.get("requestBody", {})
                if old_body.get("required") != new_body.get("required"):
                    problems.append(f"{here}: body required-ness changed")
                for media, content in old_body["content"].items():
                    new_content = new_body.get("content", {}).get(media, {"schema": {}})
                    problems += _same_meaning(
                        old_doc,
                        new_doc,
                        content["schema"],
                        new_content["schema"],
                        here,
                        request=True,
                    )
            for status, answer in old["responses"].items():
                new_answer = new["responses"].get(status)
                if new_answer is None:
                    problems.append(f"{here} {status}: gone")
                    continue
                if set(answer.get("links", {})) - set(new_answer.get("links", {})):
                    problems.append(f"{here} {status}: links gone")
                for media, content in answer.get("content", {}).items():
                    new_content = new_answer.get("content", {}).get(media)
                    if new_content is None:
                        problems.append(f"{here} {status}: no longer {media}")
                        continue
                    problems += _same_meaning(
                        old_doc,
                        new_doc,
                        content["schema"],
                        new_content["schema"],
                        f"{here} {status}",
                        request=False,
                    )
    return problems


async def test_api_client_written_against_the_old_document_keeps_working(
    http: aiohttp.ClientSession,
) -> None:
    """The document is generated from the models now; it is valid OpenAPI 3.1 and every path,
    method, parameter, request field (type, required-ness, enum), status and answer field of the
    hand-written one is still there with the same meaning. It only gained detail."""
    async with http.get("/api/v1/openapi.json") as resp:
        assert resp.status == 200
        spec = await resp.json()
    validate(spec)
    before = json.loads(BEFORE.read_text())
    validate(before)
    assert _changes(before, spec) == []
    # It gained what @redocly/cli lint asks for: summaries, public operations marked public.
    operations = [op for ops in spec["paths"].values() for op in ops.values()]
    assert all(op.get("summary") for op in operations)
    assert spec["paths"]["/api/v1/reports"]["post"]["security"] == []
    assert spec["servers"]


def test_the_diff_notices_a_lost_field_a_changed_type_and_a_new_requirement() -> None:
    """The comparison above is not vacuous."""
    before = json.loads(BEFORE.read_text())
    changed = copy.deepcopy(before)
    report = changed["components"]["schemas"]["NewReport"]
    del report["properties"]["location"]
    report["properties"]["anonymous"] = {"type": "string"}
    report["required"].append("follow_up")
    del changed["paths"]["/api/v1/reports"]["post"]["responses"]["429"]
    changed["components"]["schemas"]["Receipt"]["properties"]["code"] = {"type": "integer"}
    problems = _changes(before, changed)
    assert any("location: gone" in p for p in problems)
    assert any("anonymous: types" in p for p in problems)
    assert any("required" in p and "follow_up" in p for p in problems)
    assert any("429: gone" in p for p in problems)
    assert any("code: types" in p for p in problems)
