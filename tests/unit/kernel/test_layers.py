"""The layers import one way (DESIGN.md, Layout). Every import counts: module level, inside
functions and under ``TYPE_CHECKING``, because a lazy import is still a dependency and a
type-only cycle still ties two modules together."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.unit.kernel.sources import PACKAGES, ROOT, parsed

# layer -> the layers it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "trader.kernel": set(),
    "trader.exchange": {"trader.kernel"},
    "trader.engine": {"trader.kernel"},
    "trader.connector": {"trader.kernel", "trader.exchange"},
    "trader.sim": {"trader.kernel"},
    "notifier": {"trader.kernel"},
    "commander": {"trader.kernel"},
    # the root: may use everything
    "supervisor": {"trader.kernel", "trader.exchange", "trader.engine", "trader.connector",
                   "trader.sim", "notifier", "commander", "trader"},
    # trader/__main__.py (the trading process) and the public strategy path
    "trader": {"trader.kernel", "trader.engine"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(mod: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if mod == layer or mod.startswith(layer + "."):
            return layer
    raise AssertionError(f"{mod} is in no layer: add it to ALLOWED")


def imports_of(path: Path, mod: str) -> set[str]:
    tree = parsed()[path]
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            # ``from pkg import mod`` imports the submodule when there is one
            out.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in PACKAGES}


@functools.cache  # read-only for the tests: the sources are parsed once per process
def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in parsed()}
    known = set(files)
    g: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps = set()
        for imp in imports_of(path, mod):
            # resolve to the longest known module ("from a.b import C" -> a.b)
            while imp and imp not in known:
                imp = imp.rpartition(".")[0]
            if imp and imp != mod:
                deps.add(imp)
        g[mod] = deps
    return g


def test_layers_import_downwards_only() -> None:
    bad = []
    for mod, deps in graph().items():
        src = layer_of(mod)
        for dep in deps:
            dst = layer_of(dep)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{mod} imports {dep} ({src} -> {dst})")
    assert not bad, "imports against the layer order:\n" + "\n".join(sorted(bad))


def test_no_import_cycles() -> None:
    g = graph()
    # a package's __init__ importing its own submodules is not a cycle of dependencies
    def deps(m: str) -> set[str]:
        return {d for d in g[m] if not m or not d.startswith(m + ".")}
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(g, WHITE)
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        color[m] = GREY
        stack.append(m)
        for d in sorted(deps(m)):
            if color[d] == GREY:
                cycles.append(stack[stack.index(d):] + [d])
            elif color[d] == WHITE:
                visit(d, stack)
        stack.pop()
        color[m] = BLACK

    for m in sorted(g):
        if color[m] == WHITE:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_public_strategy_path_is_kept() -> None:
    # users' strategies import from here whatever the engine's layout
    from trader.engine.strategy import Strategy as Inner
    from trader.strategy import Strategy
    assert Strategy is Inner
