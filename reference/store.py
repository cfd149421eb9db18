"""A results store: one SQLite row per finished (problem, method, options, seed) task.

Each row is written and committed as its task completes, so an interrupted run (Ctrl-C, kill)
loses at most the tasks in flight. The key is a hash of the problem's content, the method, its
options, the seed and the project's version; a rerun with the same store skips every key already
present. The store also records, per row and in a ``meta`` table, the versions of the project and
of the solver packages it ran with.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from importlib import metadata

__all__ = ["ResultStore", "task_key", "package_versions", "PROJECT_VERSION"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


PROJECT_VERSION = _version("qubo-reference") or "0+unknown"


def package_versions() -> dict:
    """Versions of the project and the packages its solvers use (None when absent)."""
    names = ["qubo-reference", "numpy", "scipy", "dimod", "dwave-samplers", "dwave-preprocessing", "dwave-neal"]
    return {n: _version(n) for n in names}


def task_key(problem_hash: str, method: str, options: dict, seed) -> str:
    """Content key of a task: problem hash, method, canonical options, seed, project version."""
    blob = json.dumps([problem_hash, method, options, seed, PROJECT_VERSION], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    problem_hash TEXT NOT NULL,
    problem_name TEXT,
    method TEXT NOT NULL,
    options TEXT NOT NULL,
    seed INTEGER,
    version TEXT NOT NULL,
    record TEXT NOT NULL,
    finished REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ResultStore:
    """SQLite file of finished tasks. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._db = sqlite3.connect(path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{path}: not a usable results store ({exc})") from None
        versions = json.dumps(package_versions(), sort_keys=True)
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('versions', ?)", (versions,))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._db.close()

    def get(self, key: str) -> dict | None:
        row = self._db.execute("SELECT record FROM results WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, record: dict) -> None:
        """Insert one finished task and commit at once (a key already present is kept)."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, record["problem_hash"], record.get("problem"), record["method"],
                 json.dumps(record.get("options", {}), sort_keys=True), record.get("seed"),
                 PROJECT_VERSION, json.dumps(record, sort_keys=True), time.time()),
            )

    def rows(self) -> list[dict]:
        """Every stored record, ordered by key."""
        return [json.loads(r[0]) for r in self._db.execute("SELECT record FROM results ORDER BY key")]

    def versions(self) -> dict:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'versions'").fetchone()
        return {} if row is None else json.loads(row[0])
