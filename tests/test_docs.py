"""The documentation stays true to the code and stands alone.

The API reference is built from the docstrings (``python docs/build_api.py``, pdoc); these tests
check what can go stale by hand: docstrings present, every path and dotted name the docs mention
exists, README's commands run something that exists, nothing points outside the repository.
"""

import glob
import importlib
import importlib.util
import inspect
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)) + [os.path.join(ROOT, "README.md")]
SOURCES = sorted(p for d in ("reference", "solvers", "benchmarks", "docs", "tests")
                 for p in glob.glob(os.path.join(ROOT, d, "**", "*.py"), recursive=True))
#: a path inside the repository as the docs and docstrings write it
PATH_RE = re.compile(r"(?<![\w/.-])((?:docs|benchmarks|tests|reference|solvers)/[\w./-]*\w\.(?:md|py|txt|npz|toml|png))")
#: a dotted name of the project's API, in backticks
NAME_RE = re.compile(r"`((?:reference|solvers)(?:\.\w+)+)")


def _build_api():
    sys.path.insert(0, os.path.join(ROOT, "docs"))
    try:
        return importlib.import_module("build_api")
    finally:
        sys.path.pop(0)


def _rel(path):
    return os.path.relpath(path, ROOT)


def _read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_readme_starts_with_the_two_commands():
    head = _read(os.path.join(ROOT, "README.md"))[:400]
    assert 'pip install -e ".[test]" && python -m reference.compare' in head
    assert "python -m pytest" in head


def test_every_command_in_the_docs_names_something_that_exists():
    missing = []
    for doc in DOCS:
        for cmd in re.findall(r"python (-m [\w.]+|[\w/.-]+\.py)", _read(doc)):
            if cmd.startswith("-m "):
                mod = cmd[3:]
                if mod.split(".")[0] in ("pytest", "pip", "pdoc"):
                    continue
                if importlib.util.find_spec(mod) is None:
                    missing.append(f"{_rel(doc)}: python {cmd}")
            elif not os.path.exists(os.path.join(ROOT, cmd)):
                missing.append(f"{_rel(doc)}: python {cmd}")
    assert missing == []


def _slug(heading):
    """GitHub's anchor for a markdown heading."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def test_markdown_links_resolve_to_files_and_headings():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", _read(doc)):
            if re.match(r"[a-z]+:", target):
                continue  # an external address
            path, _, anchor = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
            if not os.path.exists(full):
                broken.append(f"{_rel(doc)}: {target}")
            elif anchor and full.endswith(".md"):
                slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", _read(full), flags=re.M)}
                if anchor not in slugs:
                    broken.append(f"{_rel(doc)}: {target} (no such heading)")
    assert broken == []


def test_paths_named_in_docs_and_docstrings_exist():
    missing = []
    for f in DOCS + SOURCES:
        for path in set(PATH_RE.findall(_read(f))):
            if not os.path.exists(os.path.join(ROOT, path)) and "*" not in path:
                missing.append(f"{_rel(f)}: {path}")
    assert missing == []


def _resolve(dotted):
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)  # AttributeError: the name does not exist
        return obj
    raise ImportError(dotted)


def test_api_names_in_the_docs_exist():
    missing = []
    for doc in DOCS:
        for name in sorted(set(NAME_RE.findall(_read(doc)))):
            try:
                _resolve(name)
            except (ImportError, AttributeError):
                missing.append(f"{_rel(doc)}: {name}")
    assert missing == []


def test_nothing_points_outside_the_repository():
    outside = [f"{_rel(f)}: {m}" for f in DOCS + SOURCES + [os.path.join(ROOT, "pyproject.toml")]
               for m in re.findall(r"design\.md|\.\./shared|/work/\w+", _read(f))
               if _rel(f) != os.path.join("tests", "test_docs.py")]
    assert outside == []


def test_every_public_module_and_name_has_a_docstring():
    missing = []
    for mod_name in _build_api().public_modules():
        mod = importlib.import_module(mod_name)
        if not (mod.__doc__ or "").strip():
            missing.append(mod_name)
        for n in getattr(mod, "__all__", []):
            obj = getattr(mod, n)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
                missing.append(f"{mod_name}.{n}")
    assert missing == []


def test_the_api_reference_builds(tmp_path):
    pytest.importorskip("pdoc", reason="the API reference needs the 'docs' extra (pdoc)")
    api = _build_api()
    assert api.main([str(tmp_path)]) == 0
    for mod in api.public_modules():
        page = tmp_path / (mod.replace(".", "/") + ".html")
        assert page.is_file(), page
    assert "layer_loss" in (tmp_path / "reference.html").read_text()
