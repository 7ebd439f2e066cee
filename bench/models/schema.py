"""``python -m bench.models.schema``: each model's JSON Schema, placed in today's OpenAPI 3.1
document in place of the hand-written ``NewReport``, then checked with openapi-spec-validator."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from openapi_spec_validator import validate

from bench.models import msgspec_report, pydantic_report

# Today's hand-written document, as saved before webapp.openapi was generated from the models.
BEFORE = Path(__file__).resolve().parents[2] / "tests" / "data" / "openapi-before.json"


def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(BEFORE.read_text())
    return doc


REF = "#/components/schemas/{model}"


def pydantic_components() -> tuple[dict[str, Any], dict[str, Any]]:
    schema = pydantic_report.ReportIn.model_json_schema(ref_template=REF)
    components = schema.pop("$defs", {})
    components["ReportIn"] = schema
    return {"$ref": REF.format(model="ReportIn")}, components


def with_report_schema(ref: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(document())
    body = doc["paths"]["/api/v1/reports"]["post"]["requestBody"]
    body["content"]["application/json"]["schema"] = ref
    doc["components"]["schemas"].update(components)
    return doc


def main() -> None:
    today = document()["components"]["schemas"]
    print("## today (webapp/openapi.py before the models: tests/data/openapi-before.json)")
    print(json.dumps({k: today[k] for k in ("NewReport", "Contact")}, indent=1))
    for name, (ref, components) in {
        "pydantic: ReportIn.model_json_schema()": pydantic_components(),
        "msgspec: msgspec.json.schema_components()": msgspec_report.schema(),
    }.items():
        validate(with_report_schema(ref, components))
        print(f"\n## {name} (in the OpenAPI 3.1 document: openapi-spec-validator passes)")
        print(json.dumps(components, indent=1))


if __name__ == "__main__":
    main()
