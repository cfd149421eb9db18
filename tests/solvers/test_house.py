"""The solvers package's house rules, read from its sources: no import cycle (package
``__init__`` files included), no private name imported across packages, one BLAS cap and one
process pool."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("solvers", "reference")


def _modules(root=ROOT):
    """``{module name: path}`` of every module of the project's packages under ``root``."""
    out = {}
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _package_of(name, path):
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(name, path, modules):
    """``[(line, imported module, imported name or None)]`` of the module-level imports of
    ``name`` (those inside functions run later and cannot close a cycle at import time)."""
    here = _package_of(name, path)
    found = []
    for node in ast.parse(path.read_text()).body:  # module level only
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module
            for a in node.names:
                sub = f"{src}.{a.name}"
                found.append((node.lineno, sub, None) if sub in modules else (node.lineno, src, a.name))
    return [f for f in found if f[1].split(".")[0] in PACKAGES]


def _graph(root=ROOT):
    """Edges ``a -> b``: importing ``a`` runs ``b`` first. Importing ``x.y.z`` runs the package
    ``__init__`` files of ``x`` and ``x.y`` too, except those of ``a``'s own ancestors (already
    running when ``a`` runs)."""
    modules = _modules(root)
    graph = {}
    for name, path in modules.items():
        mine = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
        edges = set()
        for _, target, _ in _imports(name, path, modules):
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                t = ".".join(parts[:k])
                if t in modules and t not in mine and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def _cycle(graph):
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_no_import_cycle_package_init_files_included():
    assert _cycle(_graph()) is None


def test_the_cycle_finder_sees_a_cycle_through_a_package_init(tmp_path):
    # the shape this package once had: solvers/sparse/__init__.py imports solvers._solve, which
    # imports solvers.sparse.problem, whose import runs solvers/sparse/__init__.py again
    files = {"solvers/__init__.py": "", "solvers/_solve.py": "from .sparse.problem import SparseProblem\n",
             "solvers/sparse/__init__.py": "from .. import _solve\nfrom .problem import SparseProblem\n",
             "solvers/sparse/problem.py": "from .._registry import register\n", "solvers/_registry.py": "",
             "reference/__init__.py": ""}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = _graph(tmp_path)
    assert graph["solvers._solve"] == {"solvers.sparse", "solvers.sparse.problem"}
    assert set(_cycle(graph)) == {"solvers.sparse", "solvers._solve"}
    (tmp_path / "solvers/sparse/__init__.py").write_text("from .problem import SparseProblem\n")
    assert _cycle(_graph(tmp_path)) is None


def test_no_private_name_is_imported_across_packages():
    modules = _modules()
    crossing = []
    for name, path in modules.items():
        here = _package_of(name, path)
        for line, src, what in _imports(name, path, modules):
            private = what if what is not None else src.rpartition(".")[2]
            if what is None:  # a private module: its package owns it
                owner = src.rpartition(".")[0]
            else:  # a name of module src: src's package owns it
                owner = _package_of(src, modules[src]) if src in modules else src
            if private.startswith("_") and not private.startswith("__") and owner != here:
                crossing.append(f"{path.relative_to(ROOT)}:{line}: {src} {what or ''}")
    assert not crossing, crossing


@pytest.mark.parametrize("pattern, home", [
    (r"threadpool_limits\(", "reference/validation.py"),      # the one BLAS cap: blas_threads
    (r"ProcessPoolExecutor\(", "solvers/runtime.py"),         # the one process pool: process_pool
])
def test_one_blas_cap_and_one_process_pool(pattern, home):
    sites = [str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
             if re.search(pattern, p.read_text())]
    assert sites == [home]
