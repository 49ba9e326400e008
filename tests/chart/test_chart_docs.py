"""docs/deploy.md's values table is the one scripts/chart_docs.py writes from values.yaml."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("chart_docs", ROOT / "scripts" / "chart_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_values_table_is_current():
    docs = _module()
    assert docs.render(docs.DOC.read_text()) == docs.DOC.read_text(), (
        "run python3 scripts/chart_docs.py")


def test_every_leaf_value_is_documented():
    docs = _module()
    text = docs.VALUES.read_text()
    keys = [k for k, _ in docs.documented(text)]
    values = yaml.safe_load(text)

    def leaves(node, prefix=""):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and value and not any(path == k for k in keys):
                yield from leaves(value, path + ".")
            else:
                yield path

    undocumented = [leaf for leaf in leaves(values)
                    if not any(leaf == k or leaf.startswith(k + ".") for k in keys)]
    assert not undocumented, undocumented
