"""Write docs/api.md, the API reference, from the docstrings of every public module.

    python docs/gen_api.py          # rewrite docs/api.md
    python docs/gen_api.py --check  # exit 1 if docs/api.md is stale (the tests run this)
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "api.md")
PACKAGES = ["reference", "solvers"]


def _modules():
    sys.path.insert(0, os.path.dirname(HERE))
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        yield pkg
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name.startswith("_") or info.name == "__main__":
                continue
            yield importlib.import_module(f"{pkg_name}.{info.name}")


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def render() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/gen_api.py`; do not edit by hand.", ""]
    for mod in _modules():
        names = list(getattr(mod, "__all__", []))
        lines += [f"## `{mod.__name__}`", "", _doc(mod), ""]
        own, reexported = [], []
        for name in names:
            obj = getattr(mod, name)
            home = getattr(obj, "__module__", mod.__name__)
            (own if home == mod.__name__ else reexported).append((name, obj))
        if reexported:
            lines += ["Exports: " + ", ".join(f"`{n}`" for n, _ in reexported), ""]
        for name, obj in own:
            if inspect.isclass(obj) or inspect.isfunction(obj):
                kind = "class" if inspect.isclass(obj) else "def"
                lines += [f"### {kind} `{name}{_signature(obj)}`", "", _doc(obj), ""]
                if inspect.isclass(obj):
                    for meth_name, meth in inspect.getmembers(obj):
                        if meth_name.startswith("_") or not (inspect.isfunction(meth) or inspect.ismethod(meth)
                                                             or isinstance(meth, property)):
                            continue
                        if meth_name not in obj.__dict__:
                            continue
                        sig = "" if isinstance(meth, property) else _signature(meth)
                        first = _doc(meth).split("\n\n")[0].replace("\n", " ")
                        lines += [f"* `{meth_name}{sig}`: {first}"]
                    lines += [""]
            else:
                text = re.sub(r" at 0x[0-9a-f]+", "", repr(obj))
                lines += [f"### `{name}`", "", f"`{text}`" if len(text) < 200 else "", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        with open(OUT) as fh:
            return 0 if fh.read() == text else 1
    with open(OUT, "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
