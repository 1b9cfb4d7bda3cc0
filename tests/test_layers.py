"""The package's imports run one way: each module imports only modules of its own layer or below.

Layers, bottom to top (CONTRIBUTING.md, "Package layout"):

0. the root modules: ``reidlib`` (version), ``config``, ``provenance``, ``precision``, ``reported``,
   ``claims``
1. ``data``
2. ``metrics`` (distances, ranking, matchers, the ``Features`` container)
3. ``models`` and ``losses``
4. ``methods``
5. ``engine``
6. ``eval``
7. ``viz``
8. ``chapters`` (the notebooks' support), ``weights`` (the book's committed weights)
9. ``bench``, ``cli``, ``__main__``

Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "reidlib"

LAYERS = {
    "": 0, "config": 0, "provenance": 0, "precision": 0, "reported": 0, "claims": 0,
    "data": 1,
    "metrics": 2,
    "models": 3, "losses": 3,
    "methods": 4,
    "engine": 5,
    "eval": 6,
    "viz": 7,
    "chapters": 8, "weights": 8, "comparison": 8,
    "bench": 9, "cli": 9, "__main__": 9,
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """The layer key of a module name: its first component below ``reidlib``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports():
    for f in sorted(ROOT.rglob("*.py")):
        mod = _module(f)
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name == "reidlib" or name.startswith("reidlib."):
                    yield mod, name, f"{f.relative_to(ROOT.parent)}:{node.lineno}"


def test_every_module_has_a_layer():
    unknown = sorted({_part(m) for m, _, _ in _imports()} - set(LAYERS))
    assert not unknown, f"modules without a layer (add them to LAYERS and CONTRIBUTING.md): {unknown}"


def test_imports_never_run_up_the_layers():
    bad = [f"{where}: {mod} (layer {LAYERS[_part(mod)]}) imports {name} (layer {LAYERS[_part(name)]})"
           for mod, name, where in _imports() if LAYERS[_part(name)] > LAYERS[_part(mod)]]
    assert not bad, "imports that run back up:\n" + "\n".join(bad)


def test_no_import_circle_between_packages():
    edges = {}
    for mod, name, _ in _imports():
        a, b = _part(mod), _part(name)
        if a != b:
            edges.setdefault(a, set()).add(b)
    seen, stack = set(), []

    def visit(n):
        if n in stack:
            pytest.fail("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
        if n in seen:
            return
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            visit(m)
        stack.pop()
        seen.add(n)

    for n in sorted(edges):
        visit(n)


def test_models_never_import_the_engine_methods_or_eval():
    bad = [f"{where}: {name}" for mod, name, where in _imports()
           if _part(mod) == "models" and _part(name) in ("engine", "methods", "eval")]
    assert not bad, bad
