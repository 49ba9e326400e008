"""The OpenAPI document: every 2xx response with a body has a schema, and every $ref resolves."""
from __future__ import annotations

from .api_helpers import app, client  # noqa: F401  (fixtures)

NO_BODY = {"204", "205", "304"}


def _binary(schema: dict) -> bool:
    return schema.get("type") == "string" and schema.get("format") == "binary"


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(doc: dict, ref: str):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def _document(client):  # noqa: F811
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    return resp.get_json()


def test_every_success_response_with_a_body_has_a_schema(client):  # noqa: F811
    doc = _document(client)
    missing, checked = [], 0
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, response in operation["responses"].items():
                if not status.startswith("2") or status in NO_BODY:
                    continue
                if "$ref" in response:
                    response = _resolve(doc, response["$ref"])
                content = response.get("content") or {}
                where = f"{method.upper()} {path} {status}"
                if not content:
                    missing.append(f"{where}: no content")
                for media, entry in content.items():
                    schema = entry.get("schema")
                    checked += 1
                    if not schema:
                        missing.append(f"{where} {media}: no schema")
                    elif media == "application/json" and _binary(schema):
                        missing.append(f"{where}: JSON declared as a binary stream")
                    elif "$ref" in schema:
                        target = _resolve(doc, schema["$ref"])
                        if not (target.get("properties") or target.get("items")
                                or target.get("additionalProperties")):
                            missing.append(f"{where}: {schema['$ref']} has no properties")
    assert not missing, "\n".join(missing)
    assert checked >= 25


def test_every_ref_resolves(client):  # noqa: F811
    doc = _document(client)
    refs = set(_refs(doc))
    assert refs
    for ref in sorted(refs):
        _resolve(doc, ref)


def test_listing_entries_are_documented(client):  # noqa: F811
    schemas = _document(client)["components"]["schemas"]
    listing = schemas["MessageList"]["properties"]["messages"]["items"]
    assert listing == {"$ref": "#/components/schemas/MessageEntry"}
    assert "from" in schemas["MessageEntry"]["properties"]
    assert schemas["MailboxList"]["properties"]["mailboxes"]["items"] == {
        "$ref": "#/components/schemas/Mailbox"}
