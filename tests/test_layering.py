"""The package layering, read from the source: objectives know no solver, solvers know no
application, no module imports a project module inside a function, and no import cycle.

Layers, bottom up:

1. objectives (``reference``'s math: grids, losses, networks, penalties, sparse objective, conv
   geometry, input checks) import nothing from ``solvers`` and no application;
2. ``solvers`` (posing and backends) import objectives only;
3. applications (compare, harness, store, suites, studies, testing, data sources) import anything.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: ``reference``'s objective modules (everything else in ``reference`` is an application).
OBJECTIVES = {"reference", "reference.validation", "reference.grid", "reference.loss",
              "reference.network", "reference.penalties", "reference.sparse", "reference.conv"}

#: Function-level imports of project modules that stay, each for a stated reason.
LAZY_OK = {
    # figures need matplotlib (the optional "plots" extra): loaded only when figures are asked for
    "reference.sparse_v1_figures",
}


def _modules():
    for pkg in ("reference", "solvers"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _resolve(module: str, path: pathlib.Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([base] if base else []))
    # ``from pkg import sub`` imports the submodule when one exists
    out = []
    for a in node.names:
        cand = f"{base}.{a.name}"
        if (ROOT / pathlib.Path(*cand.split("."))).with_suffix(".py").exists() or \
                (ROOT / pathlib.Path(*cand.split("."))).is_dir():
            out.append(cand)
        else:
            out.append(base)
    return out


def _project(name: str) -> bool:
    return name.split(".")[0] in ("reference", "solvers")


def _imports():
    """``{module: [(imported, at_top_level, lineno)]}`` for every project import."""
    table = {}
    for module, path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        top = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                top.add(id(node))
            elif isinstance(node, (ast.If, ast.Try)):  # guarded top-level imports
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        top.add(id(sub))
        rows = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _resolve(module, path, node):
                    if _project(name):
                        rows.append((name, id(node) in top, node.lineno))
        table[module] = rows
    return table


IMPORTS = _imports()


def _layer(name: str) -> int:
    if name in OBJECTIVES:
        return 1
    if name.split(".")[0] == "solvers":
        return 2
    return 3


def test_objectives_import_no_solver_and_no_application():
    bad = [f"{m}:{line} imports {name}" for m, rows in IMPORTS.items() if _layer(m) == 1
           for name, _, line in rows if _layer(name) > 1]
    assert not bad, bad


def test_solvers_import_no_application():
    bad = [f"{m}:{line} imports {name}" for m, rows in IMPORTS.items() if _layer(m) == 2
           for name, _, line in rows if _layer(name) > 2]
    assert not bad, bad


def test_no_project_import_inside_a_function():
    bad = [f"{m}:{line} imports {name} inside a function" for m, rows in IMPORTS.items()
           for name, top, line in rows if not top and name not in LAZY_OK]
    assert not bad, bad


def test_no_import_cycle():
    graph = {m: {n for n, top, _ in rows if top and n != m and n in IMPORTS} for m, rows in IMPORTS.items()}
    # a package's __init__ importing its own submodules is not a cycle of the math
    for m in graph:
        graph[m] = {n for n in graph[m] if not n.startswith(m + ".")}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, cycles


@pytest.mark.parametrize("module", sorted(OBJECTIVES & set(IMPORTS)))
def test_importing_an_objective_loads_no_solver(module):
    code = f"import sys, {module}; print(any(k == 'solvers' or k.startswith('solvers.') for k in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_importing_the_package_loads_only_objectives():
    """``import reference`` stays cheap: it loads objective modules only, no application."""
    code = "import sys, reference; print(' '.join(sorted(k for k in sys.modules if k.split('.')[0] == 'reference')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = set(out.stdout.split())
    assert "reference" in loaded and loaded <= OBJECTIVES, sorted(loaded - OBJECTIVES)


def test_compare_help_runs_with_every_import_at_module_level():
    out = subprocess.run([sys.executable, "-m", "reference.compare", "--help"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m reference.compare")
