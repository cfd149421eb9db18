"""Build the HTML API reference from the docstrings with pdoc (numpydoc style).

    pip install -e ".[docs]"
    python docs/build_api.py            # writes build/api/index.html (build/ is not committed)
    python docs/build_api.py OUT_DIR    # or into OUT_DIR

Every public module of ``reference`` and ``solvers`` is documented (those whose name starts with
an underscore are internal). Nothing generated is committed: the docstrings are the reference.
"""

from __future__ import annotations

import os
import pathlib
import pkgutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("reference", "solvers")


def public_modules() -> list[str]:
    """The dotted names of every public module, subpackages included: each package, then its modules by name."""
    sys.path.insert(0, ROOT)
    import importlib

    names = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        names += sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}.")
                        if not any(part.startswith("_") for part in m.name.split(".")))
    return names


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        import pdoc
        import pdoc.extract
        import pdoc.render
    except ImportError:
        print("error: the API reference needs pdoc: pip install -e '.[docs]'", file=sys.stderr)
        return 2
    out = argv[0] if argv else os.path.join(ROOT, "build", "api")
    pdoc.render.configure(docformat="numpy", math=True, search=True)
    specs, covered = [], set()
    for name in public_modules():  # pdoc walks the submodules of a package without ``__all__`` itself
        if name not in covered:
            specs.append(name)
            covered.update(pdoc.extract.walk_specs([name]))
    pdoc.pdoc(*specs, output_directory=pathlib.Path(out))
    print(f"API reference: {os.path.join(out, 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
