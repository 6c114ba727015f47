"""The import graph of lightnets, read from the source: dependencies point one way.

Every import counts, also one inside a function (a lazy import keeps `import lightnets` light, it
does not make a cycle acceptable), an `importlib.import_module("lightnets....")` and a
`lightnets.X` attribute of `import lightnets` (the PEP 562 names of lightnets/__init__.py); only
imports under `if TYPE_CHECKING:` are left out. Modules are grouped into nodes, the top-level
modules and packages of lightnets (`lightnets.deploy`, `lightnets.train`, `lightnets.cpu`, ...),
and that graph must have no cycle; nor may lightnets.deploy's modules among themselves. The CLI
(`lightnets.cli`, `lightnets.commands`, `lightnets.__main__`) sits on top: nothing else imports
it. README.md's "Layout" lists the nodes in an order every edge follows.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lightnets"
TOP = {"lightnets.cli", "lightnets.commands", "lightnets.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def root_api() -> dict[str, str]:
    """lightnets/__init__.py's `_API`: public name -> the module that defines it."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_API":
            return ast.literal_eval(node.value)
    raise AssertionError("lightnets/__init__.py has no _API table")


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`)."""
    skip = set()
    for node in ast.walk(tree):
        test = getattr(node, "test", None)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def _module_of(name: str) -> str | None:
    """The lightnets module `name` is, or an attribute of (a.b.C -> a.b); None outside."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _dynamic_target(call: ast.Call) -> str | None:
    """The module an `importlib.import_module(...)` / `__import__(...)` names (its constant
    prefix for an f-string or a concatenation)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    arg = call.args[0]
    while isinstance(arg, ast.BinOp):
        arg = arg.left
    if isinstance(arg, ast.JoinedStr) and arg.values:
        arg = arg.values[0]
    text = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else ""
    return text.rstrip(".") if text.startswith("lightnets") else None


def imports(module: str) -> list[tuple[str, int]]:
    """(imported lightnets module, line) for every import in `module`."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_only(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    api = root_api()
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:  # a submodule, a PEP 562 name of lightnets, or an attribute
                full = f"{base}.{alias.name}"
                root = api.get(alias.name, base) if base == "lightnets" else base
                names.append(full if full in MODULES else root)
        elif isinstance(node, ast.Call):
            names = [t for t in [_dynamic_target(node)] if t]
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "lightnets":
            names = [api[node.attr]] if node.attr in api else []
        found += [(m, node.lineno) for m in map(_module_of, names) if m and m != module]
    return found


def node_of(module: str, depth: int = 2) -> str:
    return ".".join(module.split(".")[:depth])


def graph(depth: int = 2, within: str | None = None) -> dict[str, dict[str, list[str]]]:
    """node -> node it imports -> ["file:line", ...] of the imports that make the edge."""
    edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module in MODULES:
        if within and not module.startswith(within + "."):
            continue
        for target, line in imports(module):
            if within and not target.startswith(within + "."):
                continue
            a, b = node_of(module, depth), node_of(target, depth)
            if a != b and "lightnets" not in (a, b):
                where = f"{MODULES[module].relative_to(REPO)}:{line}"
                if where not in edges[a][b]:
                    edges[a][b].append(where)
    return edges


def find_cycle(edges) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def describe(cycle: list[str], edges) -> str:
    lines = [" -> ".join(cycle)]
    for a, b in zip(cycle, cycle[1:]):
        lines.append(f"  {a} -> {b}: {', '.join(edges[a][b][:4])}")
    return "\n".join(lines)


def test_the_package_graph_has_no_cycle():
    edges = graph()
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle:\n" + describe(cycle, edges)


def test_deploy_modules_import_one_way():
    edges = graph(depth=3, within="lightnets.deploy")
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle in lightnets.deploy:\n" + describe(cycle, edges)


def test_nothing_below_the_cli_imports_it():
    upward = [
        f"{a} -> {b} ({', '.join(where[:2])})"
        for a, targets in graph().items()
        for b, where in targets.items()
        if b in TOP and a not in TOP
    ]
    assert upward == []


def test_lazy_imports_and_dynamic_imports_count():
    """The reader sees what a lazy import hides: the checks above would pass vacuously if not."""
    cli = dict(imports("lightnets.cli"))
    assert any(m.startswith("lightnets.commands") for m in cli)  # importlib.import_module(f"...")
    quantize = {m for m, _ in imports("lightnets.deploy.onnx")}
    assert "lightnets.deploy.quantize" in quantize  # imported inside export()


def readme_layout() -> list[set[str]]:
    """README.md's Layout: one list item per level, its nodes in backticks, lowest first."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    levels = []
    for line in section.splitlines():
        if line.startswith("- "):
            head = line[2:].split(":", 1)[0]
            levels.append({f"lightnets.{n}" for n in re.findall(r"`([\w.]+)/?`", head)})
    return levels


def test_readme_layout_is_the_dependency_order():
    levels = readme_layout()
    level = {node: i for i, names in enumerate(levels) for node in names}
    nodes = {node_of(m) for m in MODULES} - {"lightnets"}
    assert sorted(nodes - set(level)) == [], "nodes missing from README.md's Layout"
    assert sorted(set(level) - nodes) == [], "README.md's Layout names no such package"
    upward = [
        f"{a} -> {b} ({where[0]})"
        for a, targets in graph().items()
        for b, where in targets.items()
        if level[b] > level[a]
    ]
    assert upward == [], "imports against README.md's Layout order"
