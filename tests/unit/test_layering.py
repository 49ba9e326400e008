"""Layering: the core (imapapi/) imports no runtime, and no two project modules import each other.

Read from the source with `ast` (nothing is imported), so the test also sees imports inside
functions, which only hide a cycle at run time. Imports under `if TYPE_CHECKING:` are skipped.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("imapapi", "app", "celery_tasks", "sidecar", "launcher")
# What the shared core must never reach: everything above it.
ABOVE_CORE = ("app", "celery_tasks", "sidecar", "launcher")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the project packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom, at module level or inside functions, minus TYPE_CHECKING blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, path: Path, node) -> list[tuple[str, int]]:
    """The names a statement imports -> [(dotted name, line)], relative imports resolved."""
    if isinstance(node, ast.Import):
        return [(alias.name, node.lineno) for alias in node.names]
    if node.level:
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{node.module}" if node.module else package
    else:
        base = node.module or ""
    # `from pkg import mod` imports the module pkg.mod when there is one, else names of pkg
    return [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno)
            for alias in node.names]


def _project_module(name: str) -> str | None:
    """The project module a dotted import name lands in (longest known prefix), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports() -> dict[str, list[tuple[str, int]]]:
    out = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        out[module] = [t for node in _import_nodes(tree) for t in _targets(module, path, node)]
    return out


IMPORTS = _imports()


def test_the_scan_sees_the_project():
    assert {"imapapi.events", "imapapi.delivery", "launcher.cli", "app", "sidecar.main"} <= set(MODULES)
    assert "imapapi.keys" in {name for name, _ in IMPORTS["imapapi.events"]}   # `from . import keys`
    # a function-local import counts too (it only hides a cycle until the function runs)
    assert "celery_tasks.app" in {name for name, _ in IMPORTS["launcher.cli"]}


def test_core_imports_no_runtime():
    bad = [f"{MODULES[module].relative_to(ROOT)}:{line} imports {name}"
           for module, names in IMPORTS.items() if module.split(".")[0] == "imapapi"
           for name, line in names if name.split(".")[0] in ABOVE_CORE]
    assert not bad, "imapapi/ must not import app/, celery_tasks/, sidecar/ or launcher/:\n" + \
        "\n".join(bad)


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: first line}, self-imports dropped."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for module, names in IMPORTS.items():
        for name, line in names:
            target = _project_module(name)
            if target and target != module:
                graph[module].setdefault(target, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _describe(component: list[str], graph) -> str:
    owner = sorted({m.split(".")[0] for m in component})
    edges = [f"    {a} -> {b} ({MODULES[a].relative_to(ROOT)}:{line})"
             for a in component for b, line in sorted(graph[a].items()) if b in component]
    return f"  cycle in {'/, '.join(owner)}/ among {', '.join(component)}:\n" + "\n".join(edges)


# Cycles known to exist and owned elsewhere: module set -> why it is still there. The test fails
# on any other cycle, and on an entry here that no longer matches (then delete the entry).
KNOWN: dict[frozenset, str] = {}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    """One test per package, so a cycle names the package(s) it lives in."""
    graph = _graph()
    found = [c for c in _cycles(graph) if package in {m.split(".")[0] for m in c}]
    new = [c for c in found if frozenset(c) not in KNOWN]
    assert not new, "import cycles (module-level or inside functions):\n" + \
        "\n".join(_describe(c, graph) for c in new)
    known = [c for c in found if frozenset(c) in KNOWN]
    if known:
        pytest.xfail("known cycle, owned elsewhere: " + "; ".join(KNOWN[frozenset(c)] for c in known)
                     + "\n" + "\n".join(_describe(c, graph) for c in known))


def test_known_cycles_still_exist():
    """A fixed cycle must leave KNOWN, so it cannot come back unnoticed."""
    current = {frozenset(c) for c in _cycles(_graph())}
    stale = [sorted(k) for k in KNOWN if k not in current]
    assert not stale, f"these cycles are gone: delete them from KNOWN in {__file__}: {stale}"


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert _cycles(graph) == [["a", "b", "c"]]


KEY_PREFIXES = ("ia:", "iad:", "iah:", "ial:", "iam:")
KEYS_CHECKED = ("imapapi", "app", "celery_tasks", "launcher")   # sidecar/: see its own issue part


def _key_literals(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            node = node.values[0]
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith(KEY_PREFIXES):
            yield node.lineno, node.value


def test_redis_keys_are_named_in_keys_py():
    """One place to look up (and change) the Redis layout: imapapi/keys.py."""
    bad = [f"{path.relative_to(ROOT)}:{line} {value!r}"
           for module, path in MODULES.items()
           if module.split(".")[0] in KEYS_CHECKED and module != "imapapi.keys"
           for line, value in _key_literals(ast.parse(path.read_text(encoding="utf-8")))]
    assert not bad, "Redis key literals outside imapapi/keys.py:\n" + "\n".join(bad)
