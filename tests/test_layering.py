"""The package layering, read from the source: objectives know no solver and no application,
solvers know no application, no module imports a project module inside a function, and no
import cycle, package ``__init__`` files included.

Layers, bottom up, by package (no list of module names):

1. objectives: the modules directly in ``reference`` (grids, losses, networks, conv geometry,
   penalties, the sparse objective, data helpers, input checks) import nothing from ``solvers``
   and no application, at module level or inside a function;
2. ``solvers`` (posing and backends) import objectives only;
3. applications: every subpackage of ``reference`` (``reference.compare``, ``reference.studies``,
   ``reference.testing``, ...) imports anything.

Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` before ``a/b/c.py``, so the
import graph has an edge to each of them, except to the importing module's own packages (already
being initialised when it runs). A cycle in that graph is a cycle of the import system.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("reference", "solvers")

#: Function-level imports of project modules that stay, each for a stated reason.
LAZY_OK = {
    # figures need matplotlib (the optional "plots" extra): loaded only when figures are asked for
    "reference.studies.sparse_v1_figures",
}


def _modules(root: pathlib.Path):
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def _is_module(root: pathlib.Path, dotted: str) -> bool:
    base = root / pathlib.Path(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _resolve(root: pathlib.Path, module: str, path: pathlib.Path, node) -> list[str]:
    """The modules an import statement names (``from pkg import sub`` names ``pkg.sub`` when
    that is a module, else ``pkg`` itself)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([base] if base else []))
    return [f"{base}.{a.name}" if _is_module(root, f"{base}.{a.name}") else base for a in node.names]


def _project(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _top_level_nodes(tree) -> set:
    top = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            top.add(id(node))
        elif isinstance(node, (ast.If, ast.Try)):  # guarded top-level imports
            top.update(id(sub) for sub in ast.walk(node) if isinstance(sub, (ast.Import, ast.ImportFrom)))
    return top


def import_table(root: pathlib.Path = ROOT) -> dict:
    """``{module: [(imported, at_top_level, lineno)]}`` for every project import under ``root``."""
    table = {}
    for module, path in _modules(root):
        tree = ast.parse(path.read_text(), str(path))
        top = _top_level_nodes(tree)
        table[module] = [(name, id(node) in top, node.lineno)
                         for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                         for name in _resolve(root, module, path, node) if _project(name)]
    return table


def applications(root: pathlib.Path = ROOT) -> set:
    """Every subpackage of ``reference``: the applications."""
    return {f"reference.{p.parent.name}" for p in (root / "reference").glob("*/__init__.py")}


def layer(name: str, apps: set) -> int:
    """1 for an objective, 2 for a solver, 3 for an application."""
    if name.split(".")[0] == "solvers":
        return 2
    if any(name == a or name.startswith(a + ".") for a in apps):
        return 3
    return 1


def layer_violations(table: dict, apps: set, at: int) -> list[str]:
    """Imports by modules of layer ``at`` of anything in a higher layer."""
    return [f"{m}:{line} imports {name}" for m, rows in table.items() if layer(m, apps) == at
            for name, _, line in rows if layer(name, apps) > at]


def import_graph(table: dict) -> dict:
    """Edges of the top-level imports: to the imported module and to every package ``__init__``
    on its way, except the importing module's own packages."""
    graph = {}
    for m, rows in table.items():
        own = {".".join(m.split(".")[:i]) for i in range(1, len(m.split(".")))}
        edges = set()
        for name, top, _ in rows:
            if not top:
                continue
            parts = name.split(".")
            prefixes = {".".join(parts[:i]) for i in range(1, len(parts))} - own
            edges |= {n for n in prefixes | {name} if n != m and n in table}
        graph[m] = edges
    return graph


def find_cycles(graph: dict) -> list[list[str]]:
    """Every back edge of a depth-first search, as the cycle it closes."""
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
    return cycles


IMPORTS = import_table()
APPS = applications()
OBJECTIVES = sorted(m for m in IMPORTS if layer(m, APPS) == 1)


def test_the_applications_are_the_subpackages_of_reference():
    assert {"reference.compare", "reference.studies", "reference.testing"} <= APPS
    assert "reference.grid" in OBJECTIVES and "reference.cnn" in OBJECTIVES
    assert not any(m.startswith("reference.compare") for m in OBJECTIVES)


def test_objectives_import_no_solver_and_no_application():
    bad = layer_violations(IMPORTS, APPS, 1)
    assert not bad, bad


def test_solvers_import_no_application():
    bad = layer_violations(IMPORTS, APPS, 2)
    assert not bad, bad


def test_no_project_import_inside_a_function():
    bad = [f"{m}:{line} imports {name} inside a function" for m, rows in IMPORTS.items()
           for name, top, line in rows if not top and name not in LAZY_OK]
    assert not bad, bad


def test_no_import_cycle():
    cycles = find_cycles(import_graph(IMPORTS))
    assert not cycles, cycles


def _write(root: pathlib.Path, files: dict) -> None:
    for rel, text in files.items():
        path = root.joinpath(*rel.split(" "))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_fail_on_a_planted_cycle_and_a_planted_upward_import(tmp_path):
    """The detectors on a toy tree: a cycle through a package ``__init__`` (``solvers.sub``'s
    ``__init__`` -> ``solvers.run`` -> ``solvers.sub.part``, which runs ``solvers.sub`` first) and
    an objective importing an application inside a function."""
    _write(tmp_path, {  # paths as space-separated parts
        "reference __init__.py": "",
        "reference grid.py": "def f():\n    from reference.app import tool\n",
        "reference app __init__.py": "",
        "reference app tool.py": "import solvers\n",
        "solvers __init__.py": "from . import run\n",
        "solvers run.py": "from .sub.part import g\n",
        "solvers sub __init__.py": "from .. import run\n",
        "solvers sub part.py": "g = 1\n",
    })
    table = import_table(tmp_path)
    apps = applications(tmp_path)
    assert apps == {"reference.app"}
    assert layer_violations(table, apps, 1) == ["reference.grid:2 imports reference.app.tool"]
    cycles = find_cycles(import_graph(table))
    assert ["solvers.run", "solvers.sub", "solvers.run"] in cycles
    # a package __init__ importing its own submodules is no cycle
    _write(tmp_path, {"solvers sub __init__.py": "from .part import g\n"})
    assert find_cycles(import_graph(import_table(tmp_path))) == []


@pytest.mark.parametrize("module", OBJECTIVES)
def test_importing_an_objective_loads_no_solver_and_no_application(module):
    code = (f"import sys, {module}; print(any(k.split('.')[0] == 'solvers' or "
            f"any(k == a or k.startswith(a + '.') for a in {sorted(APPS)!r}) for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_importing_the_package_loads_only_objectives():
    """``import reference`` stays cheap: it loads objective modules only, no application."""
    code = "import sys, reference; print(' '.join(sorted(k for k in sys.modules if k.split('.')[0] == 'reference')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = set(out.stdout.split())
    assert "reference" in loaded and loaded <= set(OBJECTIVES), sorted(loaded - set(OBJECTIVES))


def test_compare_help_runs_with_every_import_at_module_level():
    out = subprocess.run([sys.executable, "-m", "reference.compare", "--help"], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m reference.compare")
