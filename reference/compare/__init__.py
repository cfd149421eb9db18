"""The compare application: every method on every problem against the proven optimum.

``python -m reference.compare`` (:mod:`reference.compare.cli`) builds problems from the built-in
suites (:mod:`~reference.compare.suites`), the user's files (:mod:`~reference.compare.problem_files`,
:mod:`~reference.compare.sources`), runs them through :mod:`~reference.compare.harness` and keeps
results in :mod:`~reference.compare.store`. Importing the package loads none of them.
"""
