"""The OpenAPI document: every 2xx response with a body has a schema (JSON: properties; downloads:
a string), and every $ref resolves."""
from __future__ import annotations

from app.mailboxes.schemas import MailboxCreatedSchema, MailboxListSchema
from app.messages.schemas import MessageDetailsSchema, MessageListSchema

from .api_helpers import app, client  # noqa: F401  (fixtures)

NO_BODY = {"204", "205", "304"}


def _stream(schema: dict) -> bool:
    """A download (raw message, attachment, text log): a string, binary or text."""
    return schema.get("type") == "string"


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


def undocumented(doc: dict) -> tuple[list[str], int]:
    """-> (2xx responses with a body but no schema, number of response bodies checked)."""
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
                    elif media != "application/json":
                        if not _stream(schema):
                            missing.append(f"{where} {media}: not a stream (type string)")
                    elif "$ref" in schema:
                        target = _resolve(doc, schema["$ref"])
                        if not (target.get("properties") or target.get("items")
                                or target.get("additionalProperties")):
                            missing.append(f"{where}: {schema['$ref']} has no properties")
    return missing, checked


def test_every_success_response_with_a_body_has_a_schema(client):  # noqa: F811
    missing, checked = undocumented(_document(client))
    assert not missing, "\n".join(missing)
    assert checked >= 25


def test_the_walk_finds_an_undocumented_body():
    ok = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}
    doc = {"components": {"schemas": {"A": {"properties": {"a": {}}}, "B": {}}}, "paths": {"/x": {
        "get": {"responses": {"200": {"description": "OK"}, "default": {}}},
        "put": {"responses": {"200": ok, "204": {"description": "no body"}}},
        "post": {"responses": {"201": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/B"}}}}}},
        "patch": {"responses": {"200": {"content": {"message/rfc822": {}}},
                                "206": {"content": {"text/plain": {"schema": {"type": "object"}}}}}},
        "delete": {"responses": {"200": {"content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}}}}}}
    missing, checked = undocumented(doc)
    assert [m.split(":")[0] for m in missing] == ["GET /x 200", "POST /x 201",
                                                   "PATCH /x 200 message/rfc822",
                                                   "PATCH /x 206 text/plain"]
    assert checked == 5


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


def test_documenting_schemas_leave_sidecar_bodies_as_they_are():
    entry = {"id": "AAAB", "uid": 1, "from": None, "attachments": [{"id": "x", "new": 1}],
             "notInTheSchema": True}
    listing = {"total": 1, "page": 0, "pages": 1, "messages": [entry]}
    assert MessageListSchema().dump(listing) == listing
    assert MessageDetailsSchema().dump({**entry, "headers": {"x": ["y"]}}) == {
        **entry, "headers": {"x": ["y"]}}
    boxes = {"mailboxes": [{"path": "INBOX", "messages": None, "extra": "kept"}]}
    assert MailboxListSchema().dump(boxes) == boxes
    assert MailboxCreatedSchema().dump({"path": "A", "created": True}) == {"path": "A",
                                                                            "created": True}
