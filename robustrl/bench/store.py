"""The results database: SQLite (WAL), one row per episode, cells written all-or-nothing.

Tables
    meta      key/value: schema version, suite name, suite hash (a DB belongs to one suite)
    episodes  one row per (trained run, perturbation, strength, seed, episode): return, length,
              the cell's config hash, suite name/hash
    cells     finished cells; a cell's episode rows and its `cells` row are committed in one
              transaction, so after a SIGKILL a cell is either complete or absent
    runs      one row per trained run: agent, env, seed, run directory, empirical Lipschitz
    run_configs  per stored run: its fully resolved config and provenance (JSON). One DB holds
              one configuration per agent × env × seed: a sweep whose resolved config for one
              of them differs from a stored one (agents/ppo.toml edited, another robustrl
              version) is refused in one line naming what changed, so a report never mixes
              two configurations in one cell.
    failures  jobs whose last attempt raised: their one-line error (a rerun retries them;
              storing the job's results deletes its row)

Only the driver process writes (workers return results), so SQLite never sees contention from
the sweep itself; a second sweep on the same file is refused by an advisory lock.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text
from robustrl.core.provenance import provenance, provenance_changes

SCHEMA_VERSION = "1"
BUSY_TIMEOUT = 5.0
"""Seconds to wait for a lock held by another process before giving up with one line."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episodes (
    config_hash TEXT NOT NULL, run TEXT NOT NULL, agent TEXT NOT NULL, env TEXT NOT NULL,
    seed INTEGER NOT NULL, perturbation TEXT NOT NULL, spec TEXT NOT NULL, strength REAL,
    episode INTEGER NOT NULL, eval_seed INTEGER NOT NULL, return REAL NOT NULL,
    length INTEGER NOT NULL, suite TEXT NOT NULL, suite_hash TEXT NOT NULL,
    PRIMARY KEY (config_hash, episode));
CREATE TABLE IF NOT EXISTS cells (
    config_hash TEXT PRIMARY KEY, run TEXT NOT NULL, agent TEXT NOT NULL, env TEXT NOT NULL,
    seed INTEGER NOT NULL, perturbation TEXT NOT NULL, spec TEXT NOT NULL, strength REAL,
    episodes INTEGER NOT NULL, return_mean REAL NOT NULL, seconds REAL NOT NULL,
    finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY, agent TEXT NOT NULL, env TEXT NOT NULL, seed INTEGER NOT NULL,
    run_dir TEXT NOT NULL, steps INTEGER NOT NULL, lipschitz REAL, lipschitz_eps REAL,
    train_seconds REAL);
CREATE TABLE IF NOT EXISTS run_configs (
    run TEXT PRIMARY KEY, agent TEXT NOT NULL, env TEXT NOT NULL, seed INTEGER NOT NULL,
    config TEXT NOT NULL, provenance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    run TEXT PRIMARY KEY, agent TEXT NOT NULL, env TEXT NOT NULL, seed INTEGER NOT NULL,
    run_dir TEXT NOT NULL, error TEXT NOT NULL, failed_at TEXT NOT NULL);
"""

EPISODE_COLUMNS = ("config_hash", "run", "agent", "env", "seed", "perturbation", "spec",
                   "strength", "episode", "eval_seed", "return", "length", "suite", "suite_hash")


def _locked(e: sqlite3.OperationalError) -> bool:
    return "locked" in str(e) or "busy" in str(e)


def connect(path: str | Path, timeout: float | None = None, must_exist: bool = False
            ) -> sqlite3.Connection:
    """Open a results DB in WAL mode; a locked or non-SQLite file is one clear line."""
    path = Path(path)
    if must_exist and not path.is_file():
        raise RobustRLError(f"results database {path} not found")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT if timeout is None else timeout,
                               isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process kill
        if must_exist:
            conn.execute("SELECT count(*) FROM meta").fetchone()
        else:
            conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as e:
        if isinstance(e, sqlite3.OperationalError) and _locked(e):
            raise RobustRLError(f"results database {path} is locked by another process; wait "
                                "for it to finish or use another --db") from None
        raise RobustRLError(f"{path} is not a robustrl results database ({e})") from None
    return conn


class ResultStore:
    """The driver's handle on a suite's results database (see the module docstring)."""

    def __init__(self, path: str | Path, suite: str, suite_hash: str,
                 timeout: float | None = None):
        self.path = Path(path)
        self.suite, self.suite_hash = suite, suite_hash
        self._lock_fd: int | None = None
        self._acquire_lock()
        try:
            self.conn = connect(self.path, timeout=timeout)
            self._check_suite()
        except BaseException:
            self._release_lock()
            raise

    # ------------------------------------------------------------------ ownership
    def _acquire_lock(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RobustRLError(f"results database {self.path} is locked: another sweep is "
                                "writing to it; wait for it or use another --db") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _check_suite(self) -> None:
        with self.transaction():
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                self.conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("schema_version", SCHEMA_VERSION), ("suite", self.suite),
                    ("suite_hash", self.suite_hash)])
                return
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise RobustRLError(f"{self.path} has results schema {meta.get('schema_version')}, "
                                f"this robustrl writes {SCHEMA_VERSION}; use another --db")
        if meta.get("suite_hash") != self.suite_hash:
            raise RobustRLError(
                f"{self.path} holds results of suite '{meta.get('suite')}' "
                f"(hash {meta.get('suite_hash')}), not of this suite '{self.suite}' (hash "
                f"{self.suite_hash}); pass another --db (the suite file changed since?)")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; a lock held elsewhere becomes one clear line."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if _locked(e):
                raise RobustRLError(f"results database {self.path} is locked by another "
                                    "process; nothing was written, rerun when it is free") from None
            raise
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
        self._release_lock()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ configurations
    def check_configs(self, jobs: list[Any]) -> None:
        """Refuse, before anything trains, a sweep that would store a second configuration
        (or a robustrl/package version) for an agent × env × seed this DB already holds."""
        stored = {(r[1], r[2], r[3]): (r[0], json.loads(r[4]), json.loads(r[5]))
                  for r in self.conn.execute("SELECT * FROM run_configs")}
        here = {k: v for k, v in provenance().items() if k != "git_commit"}
        self._configs = {}
        for job in jobs:
            config = job_config(job)
            self._configs[job.run_id] = config
            old = stored.get((job.label, job.env, job.seed))
            if old is None:
                continue
            what = f"{job.label} on {job.env} seed {job.seed}"
            changed = config_changes(old[1], config)
            old_prov = {k: v for k, v in old[2].items() if k != "git_commit"}
            changed += provenance_changes(old_prov, here)
            if changed:
                raise RobustRLError(
                    f"{self.path} holds {what} with another configuration ({'; '.join(changed[:4])}"
                    f"{' ...' if len(changed) > 4 else ''}); results of two configurations are "
                    "not mixed: pass another --db/--out, or restore the old settings")

    # ------------------------------------------------------------------ reads and writes
    def finished_cells(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT config_hash FROM cells")}

    def write_job(self, result: dict[str, Any]) -> None:
        """Store a job's run row and all its cells in one transaction (all-or-nothing)."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        r = result
        with self.transaction() as conn:
            conn.execute("DELETE FROM failures WHERE run = ?", (r["run"],))
            conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (r["run"], r["agent"], r["env"], r["seed"], r["run_dir"], r["steps"],
                          r["lipschitz"], r["lipschitz_eps"], r["train_seconds"]))
            config = getattr(self, "_configs", {}).get(r["run"])
            if config is not None:
                conn.execute("INSERT OR REPLACE INTO run_configs VALUES (?, ?, ?, ?, ?, ?)",
                             (r["run"], r["agent"], r["env"], r["seed"],
                              json.dumps(config, sort_keys=True, default=str),
                              json.dumps(provenance(), sort_keys=True)))
            for c in r["cells"]:
                conn.execute("DELETE FROM episodes WHERE config_hash = ?", (c["config_hash"],))
                conn.executemany(
                    f"INSERT INTO episodes VALUES ({', '.join('?' * len(EPISODE_COLUMNS))})",
                    [(c["config_hash"], r["run"], r["agent"], r["env"], r["seed"],
                      c["perturbation"], c["spec"], c["strength"], ep, r["eval_seed"] + ep,
                      ret, length, self.suite, self.suite_hash)
                     for ep, (ret, length) in enumerate(zip(c["returns"], c["lengths"]))])
                conn.execute(
                    "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c["config_hash"], r["run"], r["agent"], r["env"], r["seed"],
                     c["perturbation"], c["spec"], c["strength"], len(c["returns"]),
                     sum(c["returns"]) / len(c["returns"]), c["seconds"], now))

    def write_failure(self, job: Any, error: str) -> None:
        """Record that `job` (a suite.Job) raised `error` (one line); a rerun retries it."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (job.run_id, job.label, job.env, job.seed, job.run_dir, error, now))


def read_failures(db: str | Path) -> list[dict[str, Any]]:
    """The failed jobs of a results DB (none in a DB written before failures were stored)."""
    conn = connect(db, must_exist=True)
    try:
        if not conn.execute("SELECT name FROM sqlite_master WHERE name = 'failures'").fetchone():
            return []
        return read_table(conn, "failures")
    finally:
        conn.close()


def job_config(job: Any) -> dict[str, Any]:
    """A bench job's fully resolved run config as flat `section.key` -> value (JSON-able)."""
    from robustrl.core.config import to_dict

    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}{k}.", v)
        else:
            flat[prefix[:-1]] = list(value) if isinstance(value, tuple) else value

    from robustrl.envs import spec

    run = job.run
    try:  # the env's own defaults (envs/*.toml) count too: an edit there changes results
        env_spec = dict(spec(job.env).kwargs)
    except RobustRLError:
        env_spec = {}
    walk("", {"run": to_dict(run.run), "env": run.env, "agent": to_dict(run.agent),
              "reward": to_dict(run.reward), "heron": to_dict(run.heron),
              "env_spec": env_spec})
    for key in ("run.tensorboard", "run.checkpoint_every", "run.threads"):
        flat.pop(key, None)  # where and how fast, not what is computed
    return json.loads(json.dumps(flat, default=str))


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`["agent.lr 0.0003 -> 0.001", ...]` between two flat configs."""
    return [f"{k} {old.get(k, '-')} -> {new.get(k, '-')}"
            for k in sorted(set(old) | set(new)) if old.get(k, "-") != new.get(k, "-")]


def read_table(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    cursor = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names only
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def export_csv(db: str | Path, path: str | Path, table: str = "episodes") -> Path:
    """Write one table of a results DB (default: every episode row) as CSV, atomically."""
    if table not in ("episodes", "cells", "runs"):
        raise RobustRLError(f"unknown table '{table}'; choose episodes, cells or runs")
    conn = connect(db, must_exist=True)
    try:
        rows = read_table(conn, table)
        names = [d[1] for d in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()
    for row in rows if table == "runs" else []:  # a committed export names no local path
        row["run_dir"] = _relative_to(row["run_dir"], Path(db).resolve().parent)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def _relative_to(path: str, folder: Path) -> str:
    """`path` relative to `folder` when it lies inside it (else unchanged)."""
    p = Path(path)
    return p.relative_to(folder).as_posix() if p.is_absolute() and p.is_relative_to(folder) \
        else path
