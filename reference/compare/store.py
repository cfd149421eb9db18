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

__all__ = ["ResultStore", "StoreError", "task_key", "package_versions", "PROJECT_VERSION"]


class StoreError(ValueError):
    """A file that is not a usable results store of this project, or a corrupted row in one."""


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


_COLUMNS = {
    "results": ["key", "problem_hash", "problem_name", "method", "options", "seed", "version", "record", "finished"],
    "meta": ["name", "value"],
}

#: Keys and types every stored record must have (a row without them is corrupted).
_RECORD = {"problem_hash": str, "method": str, "kind": str, "optimal": bool, "status": str,
           "seconds": (int, float)}


def _existing_schema(db) -> dict:
    """``{table: [columns]}`` of the file, read without writing (DatabaseError if not SQLite)."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: [r[1] for r in db.execute(f'PRAGMA table_info("{t}")')] for t in tables}


class ResultStore:
    """SQLite file of finished tasks. Use as a context manager or call :meth:`close`.

    A file that is not SQLite, or an SQLite file with tables other than this store's, is refused
    with :class:`StoreError` before anything is written to it (it is left byte for byte as it was).
    """

    def __init__(self, path: str):
        self.path = path
        self._db = None
        try:
            self._db = sqlite3.connect(path)
            schema = _existing_schema(self._db)
            if schema and schema != {t: c for t, c in _COLUMNS.items() if t in schema}:
                raise StoreError(f"{path}: not a results store of this project (it has tables "
                                 f"{sorted(schema)}); give a new file or one written by this command")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            versions = json.dumps(package_versions(), sort_keys=True)
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('versions', ?)", (versions,))
        except StoreError:
            self.close()
            raise
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"{path}: not a usable results store ({exc})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _record(self, text, key) -> dict:
        try:
            rec = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: the row of task {key[:12]} is corrupted ({exc}); delete the "
                             "row or use a new store") from None
        bad = not isinstance(rec, dict) or any(not isinstance(rec.get(k), t) for k, t in _RECORD.items())
        if not bad:
            v = rec.get("value")
            bad = v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))
        if bad:
            raise StoreError(f"{self.path}: the row of task {key[:12]} is corrupted (not a complete record); "
                             "delete the row or use a new store")
        return rec

    def get(self, key: str) -> dict | None:
        """The stored record of ``key`` (None if absent); StoreError if its row is corrupted."""
        try:
            row = self._db.execute("SELECT record FROM results WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the store ({exc})") from None
        return None if row is None else self._record(row[0], key)

    def put(self, key: str, record: dict) -> None:
        """Insert one finished task and commit at once (a key already present is kept)."""
        try:
            with self._db:
                self._db.execute(
                    "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, record["problem_hash"], record.get("problem"), record["method"],
                     json.dumps(record.get("options", {}), sort_keys=True), record.get("seed"),
                     PROJECT_VERSION, json.dumps(record, sort_keys=True), time.time()),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write the store ({exc})") from None

    def rows(self) -> list[dict]:
        """Every stored record, ordered by key."""
        return [self._record(r[1], r[0]) for r in self._db.execute("SELECT key, record FROM results ORDER BY key")]

    def versions(self) -> dict:
        row = self._db.execute("SELECT value FROM meta WHERE name = 'versions'").fetchone()
        return {} if row is None else json.loads(row[0])
