"""The import structure: fungrad is a stack of layers, each importing only the
layers below it, at module top level, with no cycle anywhere.

The layers, lowest first (docs/how-it-works.md draws them):

    core         _version, arrays (fungrad.Array), caches, errors, config, pytree, core (IR, types, errors, the
                 current trace)
    tracing      tracing (Tracer, Trace, make_jaxpr)
    primitives   primitives/*: first-order primitives, each with all its rules
    interpreter  interpreter (eval_jaxpr: the definition of what a jaxpr means)
    transforms   transforms/* (jvp, vjp, vmap, partial eval, simplify, structure, inline,
                 sparsity detection, coloring)
    hop          hop/* higher-order primitives, whose rules run transforms (control
                 flow, custom_jvp/custom_vjp, checkpoint)
    backend      backend/* (codegen, numba, the disk cache, the execution policy)
    api          api_util, jitted, api (every user-facing transform), sparse (sparse
                 jacobians and hessians, and the sparsity rules of control flow)
    faces        fungrad, fungrad.lax (JAX's names for primitives/ and hop/),
                 numpy/*, nn, testing, viz, extend, tree_util, tour, __main__, tree,
                 flatten_util, helpers, optimizers, misc/*, debug

Every import of a fungrad module is counted, top-level or not, and so is the
import of a module's package that Python performs first.  A package's `__init__`
importing its own modules is therefore not counted (each of them imports it).  Optional heavy dependencies (numba, scipy, graphviz,
hypothesis, dask) may be imported lazily; they are not fungrad modules.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "fungrad"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("fungrad._version", "fungrad.arrays", "fungrad.caches", "fungrad.errors", "fungrad.config",
              "fungrad.pytree", "fungrad.core")),
    ("tracing", ("fungrad.tracing",)),
    ("primitives", ("fungrad.primitives",)),
    ("interpreter", ("fungrad.interpreter",)),
    ("transforms", ("fungrad.transforms",)),
    ("hop", ("fungrad.hop",)),
    ("backend", ("fungrad.backend",)),
    ("api", ("fungrad.api_util", "fungrad.jitted", "fungrad.api", "fungrad.sparse")),
    ("faces", ("fungrad", "fungrad.lax", "fungrad.numpy", "fungrad.nn", "fungrad.testing",
               "fungrad.viz", "fungrad.extend", "fungrad.tree_util", "fungrad.tour",
               "fungrad.random", "fungrad.scipy", "fungrad.__main__", "fungrad.distributed",
               "fungrad.tree", "fungrad.flatten_util", "fungrad.helpers", "fungrad.optimizers",
               "fungrad.misc", "fungrad.debug")),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The index of `module`'s layer: the longest matching prefix wins, where a
    prefix ending in '.' matches the package's children only, and any other prefix
    matches the module itself and (for packages) its children."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix.endswith("."):
                hit = module.startswith(prefix)
            else:
                hit = module == prefix or (module.startswith(prefix + ".")
                                           and prefix != "fungrad")
            if hit and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise KeyError(module)
    return best


def _imports(module: str, path: Path):
    """(target module, line, inside a function?) for each import of a fungrad module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "fungrad":
                        yield alias.name, child.lineno, in_function
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    if child.level - 1 >= len(base):   # climbs past the top package
                        yield f"<relative import beyond fungrad: {child.module}>", \
                            child.lineno, True
                        continue
                    base = base[:len(base) - (child.level - 1)]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module or ""
                if source.split(".")[0] != "fungrad":
                    continue
                for alias in child.names:
                    candidate = f"{source}.{alias.name}"
                    yield (candidate if candidate in MODULES else source), child.lineno, \
                        in_function
            yield from visit(child, nested)
    yield from visit(tree, False)


EDGES = [(m, target, line, inner) for m, p in MODULES.items()
         for target, line, inner in _imports(m, p)]


def test_every_module_has_a_layer():
    unplaced = []
    for m in MODULES:
        try:
            layer_of(m)
        except KeyError:
            unplaced.append(m)
    assert not unplaced, f"modules in no layer (add them to LAYERS and the docs): {unplaced}"


def test_the_import_walker_sees_imports():
    # guards the test itself: the walker must find edges of every kind
    assert ("fungrad.tracing", "fungrad.core") in {(m, t) for m, t, _, _ in EDGES}
    assert any(t == "fungrad.primitives.base" for _, t, _, _ in EDGES)
    assert len(MODULES) > 30


def test_no_fungrad_import_inside_a_function():
    inner = [f"{MODULES[m].relative_to(ROOT.parent)}:{line} imports {t}"
             for m, t, line, is_inner in EDGES if is_inner]
    assert not inner, ("imports of fungrad modules must be at module top level (only "
                       "optional heavy dependencies may be lazy):\n  " + "\n  ".join(inner))


def test_imports_point_down():
    upward = []
    for m, t, line, _ in EDGES:
        if t == m or t not in MODULES:
            continue
        if layer_of(t) > layer_of(m):
            upward.append(f"{MODULES[m].relative_to(ROOT.parent)}:{line}: {m} "
                          f"({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})")
    assert not upward, "imports that climb to a higher layer:\n  " + "\n  ".join(upward)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, t, _, _ in EDGES:
        if t in MODULES and t != m:
            if MODULES[m].name == "__init__.py" and t.startswith(m + "."):
                continue  # a package re-exporting its own children
            graph[m].add(t)
    for m in MODULES:
        # Python runs a package's __init__ before any module in it: importing a module
        # imports its package too (that is why fungrad.lax, which re-exports hop/,
        # holds no module of its own)
        parent = m.rpartition(".")[0]
        if parent in MODULES:
            graph[m].add(parent)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_only_the_backend_imports_numba():
    importers = []
    for m, p in MODULES.items():
        for node in ast.walk(ast.parse(p.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            if any(n.split(".")[0] == "numba" for n in names):
                importers.append(m)
    assert importers and all(m.startswith("fungrad.backend.") for m in importers), importers


def test_import_fungrad_imports_neither_numba_nor_scipy():
    code = ("import sys, fungrad, fungrad.numpy, fungrad.nn, fungrad.lax; "
            "print(sorted(m for m in ('numba', 'scipy', 'dask', 'distributed') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
