"""The package's import graph: no circles (function-level and TYPE_CHECKING imports included), and the
one-way flow adapters -> inputs -> constraints/objective -> solver -> audit/execution."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bondfolio"

#: What each layer may import from the package (besides itself, ``bondfolio.errors`` and
#: ``bondfolio._version``). ``cli`` and the package root may import anything.
ALLOWED: dict[str, set[str]] = {
    "inputs": set(),
    "adapters": {"inputs"},
    "constraints": {"inputs"},
    "solver": {"inputs", "constraints"},
    "audit": {"inputs", "constraints", "solver"},
    "execution": {"inputs", "constraints", "solver", "adapters", "audit"},
    "backtest": {"inputs", "constraints", "solver", "adapters", "audit", "execution"},
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every ``bondfolio`` module ``path`` imports, anywhere in the file (resolved to modules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "bondfolio")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.split(".")[0] != "bondfolio":
                continue
            for alias in node.names:  # "from pkg import module" imports the module
                out.add(f"{module}.{alias.name}" if (PACKAGE.parent / f"{module}.{alias.name}".replace(".", "/")
                                                     ).with_suffix(".py").exists()
                        or (PACKAGE.parent / f"{module}.{alias.name}".replace(".", "/")).is_dir() else module)
    return out


def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path, name) if m in modules and m != name} for name, path in modules.items()}


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_no_import_circles() -> None:
    assert _cycles(graph()) == []


def test_one_way_flow() -> None:
    wrong = []
    for module, targets in graph().items():
        layer = _layer(module)
        if layer is None:
            continue
        for t in targets:
            other = _layer(t)
            if other is not None and other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{module} imports {t}")
            if t in ("bondfolio", "bondfolio.cli"):
                wrong.append(f"{module} imports {t}")
    assert wrong == []


def test_the_walk_sees_function_level_imports() -> None:
    # the walker itself: a function-level import is an edge like any other
    g = graph()
    assert "bondfolio.inputs.base" in g["bondfolio.inputs.policy"]
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
