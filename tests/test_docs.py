"""The documentation stays true to the code."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_api_reference_is_generated_from_the_current_docstrings():
    rc = subprocess.run([sys.executable, os.path.join(ROOT, "docs", "gen_api.py"), "--check"]).returncode
    assert rc == 0, "docs/api.md is stale: run `python docs/gen_api.py`"


def test_readme_starts_with_the_two_commands():
    with open(os.path.join(ROOT, "README.md")) as fh:
        head = fh.read(400)
    assert 'pip install -e ".[test]" && python -m reference.compare' in head
    assert "python -m pytest" in head


def test_every_public_name_has_a_docstring():
    import reference
    import solvers

    missing = [f"{mod.__name__}.{n}" for mod in (reference, solvers) for n in mod.__all__
               if callable(getattr(mod, n)) and not (getattr(mod, n).__doc__ or "").strip()]
    assert missing == []
