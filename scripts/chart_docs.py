#!/usr/bin/env python3
"""Write the values table of docs/deploy.md from charts/imap-api/values.yaml ("# --" comments).

    python3 scripts/chart_docs.py          # rewrite the table in place
    python3 scripts/chart_docs.py --check  # exit 1 when the table is out of date (tests do this)
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "charts" / "imap-api" / "values.yaml"
DOC = ROOT / "docs" / "deploy.md"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):")


def documented(text: str) -> list[tuple[str, str]]:
    """[(dotted key, description)] in file order, for every key under a "# --" comment."""
    out, stack, pending = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = stripped[4:].strip()
            continue
        if stripped.startswith("#") and pending is not None:
            pending += " " + stripped[1:].strip()
            continue
        match = KEY.match(line)
        if not match or stripped.startswith("-"):
            if stripped and not stripped.startswith("#"):
                pending = None
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        if pending is not None:
            out.append((".".join(k for _, k in stack), pending))
            pending = None
    return out


def default(values: dict, key: str) -> str:
    node = values
    for part in key.split("."):
        node = node[part]
    shown = json.dumps(node, separators=(", ", ": "))
    return f"`{shown}`" if len(shown) <= 60 else "see values.yaml"


def table() -> str:
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    rows = ["| key | default | description |", "|---|---|---|"]
    for key, description in documented(text):
        rows.append(f"| `{key}` | {default(values, key)} | {description.replace('|', '/')} |")
    return "\n".join(rows)


def render(doc: str) -> str:
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def main() -> int:
    doc = DOC.read_text()
    new = render(doc)
    if "--check" in sys.argv[1:]:
        if new != doc:
            print("docs/deploy.md: values table out of date; run python3 scripts/chart_docs.py")
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
