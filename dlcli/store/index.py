"""The index of runs: one SQLite file in the runs folder, so reading commands stay fast at 100,000 runs.

The run folders remain the truth. The index keeps, for each run folder, what `runs` and the
`--where`/`--sort` selections read from it (run.json, summary.json, evaluation.json, the
flattened config.yaml) and its run.json's modification time when it was read. dlcli rewrites
run.json whenever a run starts, resumes or ends, after its other files, so each reading
command first reconciles the index with one directory listing and one `stat` per folder:
folders added, or whose run.json changed, are read again; folders gone are dropped. (A hand
edit of summary.json, evaluation.json or config.yaml alone is listed once run.json's time
changes too, `touch run.json`, or once `show` or `compare` names the run: a run named is
checked by four `stat`s; stamping four files would multiply the cost of every listing.) A missing
or damaged index is rebuilt; deleting it loses nothing. Training processes and sweep workers update
their run's row when it starts, ends, resumes or is evaluated; SQLite's WAL mode and a busy
timeout let many write at once. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dlcli.choices import WHERE_EXAMPLE, WHERE_OPERATORS, Direction, where_operators_said
from dlcli.columns import metric_name
from dlcli.errors import DlcliError
from dlcli.store.runs import (
    CONFIG_FILE,
    EVALUATION_FILE,
    INDEX_FILE,
    RUN_FILE,
    RUN_ID,
    SUMMARY_FILE,
    TEST_DATA_CHANGED,
    RunFolder,
    RunRecord,
    effective_status,
    group_of,
    running_status,
)
from dlcli.store.status import RunStatus

INDEX_VERSION = 13  # PRAGMA user_version: an index of another version is rebuilt (13: a damaged file said as its readers say it)
# SQLite's largest integer: a count beyond it (`--last 9223372036854775808`) asks for every run.
SQLITE_LARGEST = 2**63 - 1
# What a run's folder and the files its record is read from were (each one's inode, size, change and
# modification times, or None) when the row was read, kept in its record: any difference makes it stale.
READ_FROM = "read_from"
BUSY_TIMEOUT_S = 60  # a run recording its status waits this long for another writer
READ_WAIT_S = 1.0  # a reading command no longer than this, then it reads the folders

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, stamp INTEGER NOT NULL, name TEXT, status TEXT, created TEXT, sweep TEXT,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fields (
    id TEXT NOT NULL, key TEXT NOT NULL, text TEXT, number REAL, PRIMARY KEY (id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_stamps ON runs (id, stamp);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, id);
CREATE INDEX IF NOT EXISTS runs_by_sweep ON runs (sweep, id);
CREATE INDEX IF NOT EXISTS fields_by_number ON fields (key, number);
CREATE INDEX IF NOT EXISTS fields_by_text ON fields (key, text);
"""
# Each index holds the columns its query reads (an index of a WITHOUT ROWID table holds its
# primary key), so SQLite never visits the tables for them: the stamps of 100,000 runs in
# 0.03 s instead of 0.13 s, a `--where` over them in 0.03 s instead of 0.19 s, the running
# ones (which may have crashed) without reading every record.


def _fields(record: RunRecord) -> list[tuple[str, Any]]:
    """What `--where` and `--sort` can ask of a run: its config's keys and its metrics."""
    from dlcli.keys import NAMED_OBJECTS, flattened

    fields: list[tuple[str, Any]] = []
    config = record.config
    if config is not None:
        for key in NAMED_OBJECTS:  # `optimizer: adam` is `optimizer.name: adam`, and the reverse
            if isinstance(config.get(key), str):
                fields.append((f"{key}.name", config[key]))
            elif isinstance(config.get(key), dict) and isinstance(config[key].get("name"), str):
                fields.append((key, config[key]["name"]))
        loss = config.get("loss")
        if isinstance(loss, dict) and "name" not in loss:  # per output: `loss.department.name` too
            fields += [(f"loss.{output}.name", spec) for output, spec in loss.items() if isinstance(spec, str)]
        fields += list(flattened(config))
        fields.append(("group", record.info["group"] or group_of(config)))  # runs from before groups: their config's
    # a test score measured on a rebuilt split unlike training's: said, and ranked after the others'
    changed = [(TEST_DATA_CHANGED, True)] if record.test_data_changed else []
    return fields + list(record.metrics().items()) + changed


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _sql_count(count: int) -> int:
    """A count as SQLite's LIMIT takes it."""
    return min(int(count), SQLITE_LARGEST)


class RunIndex:
    """The runs folder's index; `records()` reconciles it with the folders, then answers from it."""

    def __init__(self, runs_dir: Path):
        self.runs_dir = runs_dir
        self.path = runs_dir / INDEX_FILE
        self._connection: sqlite3.Connection | None = None

    # --- the file ------------------------------------------------------------------------------

    def _open(self, where: Path | str) -> sqlite3.Connection:
        connection = sqlite3.connect(where, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a power cut may lose the last updates, never the file
        connection.execute("PRAGMA cache_size=-65536")  # 64 MiB: a rebuild of 10,000 runs 9.3 s instead of 10.7 s
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version not in (0, INDEX_VERSION) or (version and not {"runs", "fields"} <= tables):
            connection.close()  # of another version, or its tables dropped by hand: made again
            raise sqlite3.DatabaseError(f"index version {version}, tables {sorted(tables)}")
        if version == 0:  # a new index: its tables made (a write, which an existing index never waits for)
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version={INDEX_VERSION}")
        return connection

    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                try:
                    self._connection = self._open(self.path)
                    self._connection.execute("SELECT count(*) FROM runs").fetchone()
                except sqlite3.OperationalError:
                    raise
                except sqlite3.DatabaseError:  # damaged, or of another version: the folders have everything
                    self._remove()
                    self._connection = self._open(self.path)
            except (sqlite3.OperationalError, OSError):
                # a runs folder this process cannot write (read-only, another user's): an index in memory
                self._connection = self._open(":memory:")
        return self._connection

    def _remove(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # closed at once, not when collected: SQLite's locks are per process, and a connection left
    # open holds the file's lock against the next command run in the same process
    def __enter__(self) -> RunIndex:
        return self

    def __exit__(self, *exception) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------

    def _store(self, folders: list[tuple[RunFolder, int]]) -> list[RunRecord]:
        # validated through the documents' models only here, for the folders read again: a command
        # that finds the index up to date never imports pydantic (0.07 s)
        from dlcli.store.documents import load_run

        rows, fields, records = [], [], []
        for folder, stamp in folders:
            read_from = _files_read(folder)  # before reading: an edit while it reads differs (RunIndex.record)
            record = load_run(folder)
            info = record.info
            stored = {"info": info, "damage": record.damage, "summary": record.summary,
                      "evaluation": record.evaluation, "evaluation_damage": record.evaluation_damage,
                      "epochs": record.epochs_done(), READ_FROM: read_from,
                      "recorded": RunStatus.damaged.value if record.damage else info["status"]}
            rows.append((folder.id, stamp, info["name"], stored["recorded"], info["created"] or "",
                         (info["sweep"] or {}).get("id"), json.dumps(stored, default=str)))
            fields += [(folder.id, key, _text(value), _as_number(value)) for key, value in _fields(record)]
            records.append(record)
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            ids = [(row[0],) for row in rows]
            connection.executemany("DELETE FROM fields WHERE id = ?", ids)
            connection.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            connection.executemany("INSERT OR REPLACE INTO fields VALUES (?, ?, ?, ?)", fields)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return records

    def update(self, folder: RunFolder) -> RunRecord:
        """Read one run folder into the index again (after its run.json or summary changed); its record."""
        return self._store([(folder, _stamp(str(folder.file(RUN_FILE))))])[0]

    def reconcile(self) -> None:
        """Make the index agree with the folders: new and changed folders read, vanished ones dropped."""
        on_disk = _folder_stamps(self.runs_dir)
        indexed = dict(self.connection.execute("SELECT id, stamp FROM runs"))
        # in id order: rows appended to the tables rather than scattered through them (a rebuild of
        # 100,000 runs took three times as long in the folder listing's order)
        changed = sorted((run_id, stamp) for run_id, stamp in on_disk.items() if indexed.get(run_id) != stamp)
        changed = [(RunFolder(self.runs_dir / run_id), stamp) for run_id, stamp in changed]
        gone = [(run_id,) for run_id in indexed if run_id not in on_disk]
        for start in range(0, len(changed), 500):
            self._store(changed[start:start + 500])
        if gone:
            connection = self.connection
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany("DELETE FROM runs WHERE id = ?", gone)
            connection.executemany("DELETE FROM fields WHERE id = ?", gone)
            connection.execute("COMMIT")

    def _reconcile_or_read_the_folders(self) -> None:
        """Reconcile, waiting at most READ_WAIT_S for another process's write (a rebuild of
        100,000 runs holds the lock for a minute); past that, reconcile a copy in memory of the
        index as last committed (a WAL file's readers never wait for its writer), so that only
        the folders changed since are read, rather than keep the user waiting in silence."""
        connection = self.connection
        connection.execute(f"PRAGMA busy_timeout={int(READ_WAIT_S * 1000)}")
        try:
            connection.execute("BEGIN IMMEDIATE")  # can this process write? Asked before any folder is read
            connection.execute("ROLLBACK")
            self.reconcile()
        except sqlite3.OperationalError:  # "database is locked"
            copy = self._open(":memory:")
            try:
                connection.backup(copy)
            except sqlite3.Error:
                pass  # nothing committed to copy: every folder is read
            self.close()
            self._connection = copy
            self.reconcile()
        else:
            connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")

    # --- reading -------------------------------------------------------------------------------

    def _minimizes(self, key: str, given: str) -> bool:
        """Whether a lower `key` (`--sort given`) is better, as a run that has it recorded (Keras's direction)."""
        row = self.connection.execute(
            "SELECT record FROM runs WHERE id IN (SELECT id FROM fields WHERE key = ? AND number IS NOT NULL) LIMIT 1",
            [key],
        ).fetchone()
        if row is None:
            from dlcli.keys import did_you_mean

            keys = [known for (known,) in self.connection.execute("SELECT DISTINCT key FROM fields")]
            read = f" (read as {key})" if key != given else ""
            some = self.connection.execute("SELECT 1 FROM fields WHERE key = ? LIMIT 1", [key]).fetchone()
            problem = "its values are text, not numbers" if some else f"no run has it{did_you_mean(key, keys)}"
            raise DlcliError(f"--sort {given}{read}: {problem}; sort by best.M, final.M or test.M of a metric M the runs "
                             "logged (e.g. val_loss), or by a numeric config key")
        directions = (json.loads(row[0]).get("summary") or {}).get("directions") or {}
        direction = directions.get(metric_name(key.split(".", 1)[1])) if "." in key else None
        return direction != Direction.max  # a config key, or a metric whose direction was not recorded: lowest first

    def _known_key(self, key: str, condition: str) -> None:
        """A `--where` key that some run has: a misspelled one would match no run, silently."""
        if self.connection.execute("SELECT 1 FROM fields WHERE key = ? LIMIT 1", [key]).fetchone() or \
                not self.connection.execute("SELECT 1 FROM runs LIMIT 1").fetchone():
            return
        from dlcli.keys import did_you_mean

        keys = [known for (known,) in self.connection.execute("SELECT DISTINCT key FROM fields")]
        if key.startswith("test."):  # well formed, and no run evaluated yet
            raise DlcliError(f"--where {condition}: no run has {key} yet: `dlcli evaluate RUN` scores a run on its test split")
        raise DlcliError(
            f"--where {condition}: no run has {key}{did_you_mean(key, keys)}; ask of a config key (e.g. "
            "optimizer.name), a metric as best.M, final.M or test.M, or group (a run's status is --status)"
        )

    def records(
        self, where: list[str] = (), status: str | None = None, sort: str | None = None, last: int | None = None,
        sweep: str | None = None,
    ) -> tuple[list[RunRecord], int]:
        """(the selected runs, oldest first — or best first with `sort` —, how many matched in all)."""
        chosen, matched = self.selected_ids(where, status, sort, last, sweep)
        return list(self.load(chosen)), matched

    def load(self, ids: list[str]) -> Iterator[RunRecord]:
        """The runs `ids` in that order, read from the index 500 at a time (a stream for `--all`)."""
        for start in range(0, len(ids), 500):  # also SQLite's limit on parameters
            part = ids[start:start + 500]
            stored = dict(self.connection.execute(
                f"SELECT id, record FROM runs WHERE id IN ({', '.join('?' * len(part))})", part,
            ))
            for run_id in part:
                yield self._decoded(self.runs_dir / run_id, stored[run_id])

    def _decoded(self, path: Path, stored: str) -> RunRecord:
        """A run's record as indexed; one the index cannot give back (its row edited or damaged
        by hand) is read from the folder, the truth, and its row marked for the next reconcile."""
        try:
            return _record(path, json.loads(stored))
        except (ValueError, KeyError, TypeError, AttributeError):
            with contextlib.suppress(sqlite3.Error):
                self.connection.execute("UPDATE runs SET stamp = -1 WHERE id = ?", [path.name])
            from dlcli.store.documents import load_run

            return load_run(RunFolder(path))

    def record(self, folder: RunFolder) -> RunRecord:
        """One run's record, `folder` being one of this runs folder's: as indexed when its run.json
        has not changed since, it was not running (a run in training, or killed in it, may have
        written files since) and none of its files was edited, removed or added since it was read
        (four `stat`s, for the run a command names: a listing stamps run.json alone), else read
        from the folder and indexed again. An index that cannot
        answer (locked by another writer for over READ_WAIT_S, damaged) is passed by: the folder
        is the truth."""
        try:
            row = self.connection.execute(
                "SELECT stamp, status, record FROM runs WHERE id = ?", [folder.id],
            ).fetchone()
            if row is not None and row[0] == _stamp(str(folder.file(RUN_FILE))) and row[1] != RunStatus.running \
                    and not _edited_since_read(folder, row[2]):
                return self._decoded(folder.path, row[2])
            self.connection.execute(f"PRAGMA busy_timeout={int(READ_WAIT_S * 1000)}")
            try:
                return self.update(folder)
            finally:
                self.connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        except sqlite3.Error:
            from dlcli.store.documents import load_run

            return load_run(folder)

    def metric_keys(self, ids: list[str]) -> list[str]:
        """The `best.`, `final.` and `test.` metrics any of the runs `ids` has: a CSV's header,
        known before its first row is streamed."""
        keys: set[str] = set()
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            keys.update(key for (key,) in self.connection.execute(
                f"SELECT DISTINCT key FROM fields WHERE id IN ({', '.join('?' * len(part))}) "
                "AND (key GLOB 'best.*' OR key GLOB 'final.*' OR key GLOB 'test.*')", part,
            ))
        return sorted(keys, key=lambda key: (("best", "final", "test").index(key.split(".")[0]), key))

    def selected_ids(
        self, where: list[str] = (), status: str | None = None, sort: str | None = None, last: int | None = None,
        sweep: str | None = None, recent: int | None = None,
    ) -> tuple[list[str], int]:
        """The ids of the selected runs as shown (oldest first, or best first with `sort`), and how
        many matched in all — the trials of sweep `sweep` only, when given; the index reconciled
        with the folders first. `last`: the first that many as shown (with `sort`, the best of all);
        `recent`: with `sort`, only that many of the latest are ranked (`runs --sort M --last N`)."""
        conditions = [(condition, *_condition(condition)) for condition in where]  # malformed: refused even with no runs
        if not self.runs_dir.is_dir() or not self.path.exists() and not _folder_stamps(self.runs_dir):
            return [], 0  # no runs: no index made in a folder that holds none (`--runs-dir .` by mistake)
        self._reconcile_or_read_the_folders()
        clauses, clause_parameters = [], []
        for condition, clause, values in conditions:
            self._known_key(values[0], condition)
            clauses.append(clause)
            clause_parameters += values
        if sweep is not None:
            clauses.append("runs.sweep = ?")
            clause_parameters.append(sweep)
        if status is not None:  # 'crashed' is a 'running' run nobody owns: found among the running
            clauses.append("runs.status = ?")
            clause_parameters.append(RunStatus.running.value if status == RunStatus.crashed else status)
        where_sql = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        # a 'running' run may be a crashed one: those few are judged here, every other status in SQL
        judged_here = status in (RunStatus.running, RunStatus.crashed)
        if sort:
            key = sort if sort.startswith(("best.", "final.", "test.")) or "." in sort else f"best.{sort}"
            ascending = "ASC" if self._minimizes(key, sort) else "DESC"
            sorted_by, arguments = "LEFT JOIN fields AS sorted ON sorted.id = runs.id AND sorted.key = ?", [key]
            order = f"sorted.number IS NULL, sorted.number {ascending}, runs.id"
            if key.startswith("test."):  # a score of other data is no rival of theirs: after them, among its own
                sorted_by += " LEFT JOIN fields AS changed ON changed.id = runs.id AND changed.key = ?"
                arguments.append(TEST_DATA_CHANGED)
                order = f"sorted.number IS NULL, changed.id IS NOT NULL, sorted.number {ascending}, runs.id"
        else:
            sorted_by, arguments, order = "", [], "runs.id DESC"
        matching_sql = where_sql  # how many match in all, said beside the ones shown
        if sort and recent is not None and not judged_here:  # the latest that match, then ranked
            latest_sql = f"SELECT runs.id FROM runs {where_sql} ORDER BY runs.id DESC LIMIT {_sql_count(recent)}"
            where_sql = f"WHERE runs.id IN ({latest_sql})"
        selection = f"{sorted_by} {where_sql} ORDER BY {order}"
        arguments += clause_parameters
        if judged_here:  # each judged by its owner.lock and pid, its record read only when shown
            owners = self.connection.execute(
                f"SELECT runs.id, json_extract(runs.record, '$.info.host'), json_extract(runs.record, '$.info.pid'), "
                f"json_extract(runs.record, '$.info.pid_started') FROM runs {selection}",
                arguments,
            )
            chosen = [run_id for run_id, host, pid, started in owners
                      if running_status(RunFolder(self.runs_dir / run_id), host, pid, started) == status]
            matched = len(chosen)
            if sort and recent is not None:
                latest = set(sorted(chosen, reverse=True)[:recent])
                chosen = [run_id for run_id in chosen if run_id in latest]
            chosen = chosen if last is None else chosen[:last]
        else:  # the ids shown and how many matched, in one pass over ids alone (records are kilobytes)
            counted = "count(*) OVER ()" if where_sql else "NULL"
            limit = f" LIMIT {_sql_count(last)}" if last is not None else ""
            fetched = self.connection.execute(f"SELECT runs.id, {counted} FROM runs {selection}{limit}", arguments)
            fetched = fetched.fetchall()
            chosen = [run_id for run_id, _ in fetched]
            if where_sql == matching_sql and where_sql:
                matched = fetched[0][1] if fetched else 0
            else:
                matched = self.connection.execute(f"SELECT count(*) FROM runs {matching_sql}", clause_parameters).fetchone()[0]
        return (chosen if sort else chosen[::-1]), matched


def _stamp(run_json: str) -> int:
    """When the run's run.json last changed: dlcli rewrites it whenever the run starts, resumes or
    ends (after its summary.json), and a hand edit changes it too; 0 when it has none."""
    try:
        return os.stat(run_json).st_mtime_ns
    except OSError:
        return 0


def _files_read(folder: RunFolder) -> list[list[int] | None]:
    """The run's folder (a file added or removed changes it) and the files its record is read from, as
    they are now: [inode, size, change time, modification time] each, None when missing. The change
    time, which no tool sets back, and the size catch a file put back with its old modification
    time (`cp -p`) or written within the clock's last tick."""
    said = []
    for path in (folder.path, *(folder.file(name) for name in (CONFIG_FILE, SUMMARY_FILE, EVALUATION_FILE))):
        try:
            found = os.stat(path)
            said.append([found.st_ino, found.st_size, found.st_ctime_ns, found.st_mtime_ns])
        except OSError:
            said.append(None)
    return said


def _edited_since_read(folder: RunFolder, stored: str) -> bool:
    """Whether the run's folder or a file its record came from changed since the index read it
    (`stored`, its row's record)."""
    try:
        read_from = json.loads(stored)[READ_FROM]
    except (ValueError, KeyError, TypeError):
        return True  # indexed before READ_FROM was kept, or its row damaged: read it again
    return read_from != _files_read(folder)


def _folder_stamps(runs_dir: Path) -> dict[str, int]:
    """Each run folder's stamp, from one listing and one stat a folder."""
    with os.scandir(runs_dir) as entries:
        return {entry.name: _stamp(f"{entry.path}/{RUN_FILE}") for entry in entries
                if entry.is_dir() and RUN_ID.fullmatch(entry.name)}


def _record(path: Path, stored: dict[str, Any]) -> RunRecord:
    """A run's record as the index keeps it: its documents as validated when its folder was read."""
    folder = RunFolder(path)
    info = stored["info"]
    status = RunStatus.damaged if stored["damage"] else effective_status(info, folder)
    epochs = None if info["status"] == RunStatus.running else stored["epochs"]  # a run in training: counted now
    return RunRecord(folder, info, status, stored["damage"], stored["summary"], stored["evaluation"], epochs,
                     evaluation_damage=stored["evaluation_damage"])


_OPERATORS = "|".join(re.escape(op) for op in sorted(("==", *WHERE_OPERATORS), key=len, reverse=True))  # longest first
CONDITION = re.compile(rf"^\s*([A-Za-z0-9_.\[\]-]+)\s*({_OPERATORS})\s*(.*?)\s*$")
# Significant digits of a fractional number in the tables (`runs`, `show`, `compare`). `--where
# KEY=VALUE` with a decimal of no more digits matches the runs whose value the table shows so:
# `best.val_accuracy=0.9325`, as printed, is the stored 0.932499...
SHOWN_DIGITS = 4


def shown(value: float) -> str:
    """A fractional number as the tables show it."""
    return f"{value:.{SHOWN_DIGITS}g}"


def _shown_as(raw: str, number: float) -> tuple[float, float] | None:
    """The numbers a table shows as `raw` (from, below), when `raw` is a decimal of at most
    SHOWN_DIGITS significant digits; None when it asks for the number exactly (a whole number,
    more digits than a table shows, an exponent)."""
    digits = raw.lstrip("+-").replace(".", "").lstrip("0")
    if not re.fullmatch(r"[-+]?\d*\.\d+", raw) or not digits or len(digits) > SHOWN_DIGITS:
        return None
    def half_unit(size: float) -> float:  # of the last digit shown, at this size
        return 0.5 * 10 ** (math.floor(math.log10(size)) - SHOWN_DIGITS + 1)

    size = abs(number)
    # just below a power of ten the digits are a decade finer: 1.0 shows 0.99995 to 1.0005
    power_of_ten = 10.0 ** round(math.log10(size)) == size
    low, high = size - half_unit(size) / (10 if power_of_ten else 1), size + half_unit(size)
    return (low, high) if number > 0 else (-high, -low)


def _infinite(text: str) -> bool:
    """Whether `text` reads as a number that is not finite (inf, .inf, 1e999, nan), in Python or YAML."""
    try:
        return not math.isfinite(float(text.replace(".inf", "inf").replace(".nan", "nan")))
    except ValueError:
        return False


def _condition(condition: str) -> tuple[str, list[Any]]:
    """`KEY=VALUE` (or another of WHERE_OPERATORS) as an SQL condition on a run's fields, and its parameters."""
    from yaml import YAMLError  # here, not at the top: listing runs without --where needs no YAML

    from dlcli.keys import parse_yaml_value

    match = CONDITION.match(condition)
    if not match or not match.group(3):
        raise DlcliError(
            f"--where {condition}: expected a KEY, an operator ({where_operators_said()}) and a VALUE, e.g. {WHERE_EXAMPLE}"
        )
    key, operator, raw = match.groups()
    if raw[0] in "=<>":  # `=>`, `=<`, `<>`: an operator misspelled would compare with the text ">0.5"
        raise DlcliError(f"--where {condition}: '{operator}{raw[0]}' is no operator; use {where_operators_said()}")
    operator = "=" if operator == "==" else operator
    key = re.sub(r"\[(\d+)\]", r".\1", key)  # `model.layers[1]`, as older dlcli printed it, is `model.layers.1`
    try:
        value = parse_yaml_value(raw)
    except YAMLError:
        value = raw
    number = _as_number(value)
    if operator in (">", "<", ">=", "<="):
        if number is None:
            what = "a finite one" if _infinite(raw) else "one"  # inf, 1e999: no run's value is beyond them
            raise DlcliError(f"--where {condition}: {operator} compares numbers; {raw!r} is not {what}")
        column, argument = "number", number
    elif number is not None:
        column, argument = "number", number
    else:
        column, argument = "text", _text(value)
    # each condition one lookup in an index of (key, value), made a set once, not a search per run
    negated = "NOT " if operator == "!=" else ""
    operator = "=" if operator == "!=" else operator
    if operator == "=" and number is not None and (interval := _shown_as(raw, number)):
        return f"runs.id {negated}IN (SELECT id FROM fields WHERE key = ? AND number >= ? AND number < ?)", [key, *interval]
    return f"runs.id {negated}IN (SELECT id FROM fields WHERE key = ? AND {column} {operator} ?)", [key, argument]


def update_index(folder: RunFolder) -> None:
    """Bring the run's row up to date; the index is a cache, so a failure is left to the next reconcile."""
    with RunIndex(folder.path.parent) as index:
        try:
            index.update(folder)
        except (sqlite3.Error, OSError):
            pass


def read_run(runs_dir: Path, folder: RunFolder) -> RunRecord:
    """One run's record: through the index of `runs_dir` when the run is one of its folders
    (RunIndex.record), so that `show` and `compare` of named runs read no more than `runs` does;
    read from its folder when it lies elsewhere (no index is made beside a folder named by path)."""
    if folder.path.parent.resolve() != runs_dir.resolve():
        from dlcli.store.documents import load_run

        return load_run(folder)
    with RunIndex(runs_dir) as index:
        return index.record(folder)
