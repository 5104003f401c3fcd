"""Decoded images kept between epochs: in memory when they fit the budget, on disk otherwise.

`training.cache` decides: `memory` decodes the training and validation images once into
uint8 arrays; `disk` decodes them once into a cache folder of raw pixels, reused by later
runs of the same files at the same size, so memory stays flat whatever the number of
images; `none` decodes every file every epoch; `auto` takes memory while the decoded
pixels fit `MEMORY_BUDGET_FRACTION` of the memory available, disk beyond.

A disk cache entry is written in a folder named with the writer's host and pid, ends
with a manifest, and is renamed into place only then: a killed run never leaves half a
cache that a later run would reuse, and an entry without its manifest is never read.
Entries unused for `UNUSED_DAYS` days that no process is reading (readers hold a shared
lock), and unfinished ones whose writer is gone, are removed whenever a new entry is
written, and `dlcli datasets cache --clean` removes them on demand.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dlcli.choices import CacheMode
from dlcli.data.examples import ArrayPool, FilePool, Split, Splits
from dlcli.errors import DataUnavailable

MEMORY_BUDGET_FRACTION = 0.25
UNUSED_DAYS = 30
CACHE_FORMAT = 1  # part of every entry's key: a new layout never reads an old one
LAST_USED_FILE = "last_used"
MANIFEST_FILE = "complete.json"
PARTIAL_MARK = ".partial-"
PARTIAL_HOURS = 24  # an unfinished entry of another host's process is left alone this long


def cache_root() -> Path:
    """`$DLCLI_CACHE_DIR`, else `$XDG_CACHE_HOME/dlcli`, else `~/.cache/dlcli`."""
    if os.environ.get("DLCLI_CACHE_DIR"):
        return Path(os.environ["DLCLI_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlcli"


def images_cache_dir() -> Path:
    return cache_root() / "images"


def available_memory() -> int:
    """Bytes of memory available to a new allocation without swapping (Linux's MemAvailable)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_cache(mode: str, decoded_bytes: int, budget: int) -> str:
    """'memory', 'disk' or 'none' for image files whose decoded pixels take `decoded_bytes`."""
    if mode != CacheMode.auto:
        return mode
    return CacheMode.memory if decoded_bytes <= budget else CacheMode.disk


@dataclass
class CacheReport:
    """What was decided, for summary.json."""

    mode: str
    requested: str
    decoded_bytes: int
    budget_bytes: int
    budget_fraction: float = MEMORY_BUDGET_FRACTION
    entries: tuple[str, ...] = ()  # disk cache folders used
    fallback: str = ""  # why `auto` decodes every epoch after all

    def describe(self) -> str:
        where = {CacheMode.memory: "decoded once into memory", CacheMode.disk: "decoded once into the disk cache",
                 CacheMode.none: "decoded every epoch"}[self.mode]
        because = f"; {self.fallback}" if self.fallback else ""
        return (f"images: {where} ({self.decoded_bytes / 1e6:,.1f} MB of pixels; memory budget "
                f"{self.budget_bytes / 1e6:,.0f} MB, training.cache: {self.requested}){because}")

    def as_dict(self) -> dict:
        return {
            "mode": self.mode, "requested": self.requested, "decoded_bytes": self.decoded_bytes,
            "budget_bytes": self.budget_bytes, "budget_fraction": self.budget_fraction,
            **({"entries": list(self.entries)} if self.entries else {}),
            **({"fallback": self.fallback} if self.fallback else {}),
        }


def _undecodable(pool: FilePool, decoded: np.ndarray, then: str = "train again") -> DataUnavailable:
    missing = pool.paths[~decoded]
    listed = "; ".join(str(path) for path in missing[:3])
    more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
    return DataUnavailable(
        f"cannot decode {listed}{more} as an image (damaged or truncated?): remove or replace it, then {then}"
    )


def _decode_all(
    pool: FilePool, store: Callable[[np.ndarray, np.ndarray], None], then: str = "train again",
) -> None:
    """Decode every image of `pool` in parallel, handing each batch to `store(indices, pixels)`."""
    from dlcli.data.pipeline import raw_examples

    decoded = np.zeros(len(pool), dtype=bool)
    for indices, pixels in raw_examples(pool).as_numpy_iterator():
        store(indices, pixels)
        decoded[indices] = True
    if not decoded.all():
        raise _undecodable(pool, decoded, then)


def _image_pools(folds: list[Splits], splits: tuple[str, ...]) -> dict[int, FilePool]:
    """The distinct pools of image files behind `splits` of `folds`, each once."""
    return {
        id(split.pool): split.pool
        for fold in folds for split in map(fold.split, splits)
        if isinstance(split.pool, FilePool) and split.pool.encoding == "image"
    }


def check_decodable(folds: list[Splits], then: str) -> None:
    """Raise DataUnavailable naming the image files of `folds` that cannot be decoded, advising `then`.

    Reads every file: for after a stream that decodes files as it goes (`training.cache:
    none`, evaluation, prediction) failed, to say which file it met.
    """
    for pool in _image_pools(folds, ("train", "validation", "test")).values():
        _decode_all(pool, lambda indices, pixels: None, then)


def in_memory(pool: FilePool) -> ArrayPool:
    """The pool's images decoded once into one uint8 array."""
    pixels = np.empty((len(pool), *pool.shape), dtype="uint8")

    def store(indices, batch):
        pixels[indices] = batch

    _decode_all(pool, store)
    return ArrayPool(pixels, pool.labels)


def entry_key(pool: FilePool) -> str:
    """The disk cache entry of these files at this size: changes when any file does."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{pool.shape}".encode())
    for path in pool.paths:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:24]


def _writer_gone(partial: Path) -> bool:
    """Whether the process writing an unfinished entry is gone: a dead pid on this host, or,
    from another host (a shared cache), no change for `PARTIAL_HOURS` hours."""
    host, _, pid = partial.name.rsplit(PARTIAL_MARK, 1)[-1].rpartition("-")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return partial.stat().st_mtime < time.time() - PARTIAL_HOURS * 3600


def _in_use(entry: Path) -> bool:
    """Whether a process reads the entry now: each holds a shared lock on its LAST_USED_FILE."""
    try:
        with open(entry / LAST_USED_FILE, "a") as marker:
            fcntl.flock(marker, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def last_used(entry: Path) -> float:
    """When a run last took up the entry (its LAST_USED_FILE's time, else the entry's own)."""
    marker = entry / LAST_USED_FILE
    return (marker if marker.exists() else entry).stat().st_mtime


def stale_entries(root: Path, older_than_days: float = UNUSED_DAYS) -> list[Path]:
    """Complete entries unused for `older_than_days` and read by no process now, and unfinished
    ones whose writer is gone."""
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_days * 86400
    stale = []
    for entry in root.iterdir():
        try:
            if PARTIAL_MARK in entry.name:
                if _writer_gone(entry):
                    stale.append(entry)
            elif entry.is_dir():
                if last_used(entry) < cutoff and not _in_use(entry):
                    stale.append(entry)
        except OSError:
            continue  # removed by another process meanwhile
    return stale


def remove_entries(entries: list[Path]) -> int:
    """Remove cache entries, best effort (another process may be removing them too); returns the bytes freed."""
    freed = 0
    for entry in entries:
        doomed = entry.with_name(f"{entry.name}{PARTIAL_MARK}removed-{os.getpid()}")
        try:
            os.replace(entry, doomed)  # first out of sight, so no reader takes up a half-removed entry
            freed += sum(f.stat().st_size for f in doomed.rglob("*") if f.is_file())
        except OSError:
            continue
        shutil.rmtree(doomed, ignore_errors=True)
    return freed


class CacheUnwritable(DataUnavailable):
    """The disk cache cannot be written: no room, no permission, not a folder."""


def _cache_write_error(root: Path, error: OSError) -> CacheUnwritable:
    reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
    return CacheUnwritable(
        f"cannot write the image cache in {root}: {reason}; free some space or set DLCLI_CACHE_DIR to a "
        "writable folder with room, or set training.cache: memory (or none)"
    )


def _manifest(pool: FilePool) -> dict:
    return {"format": CACHE_FORMAT, "count": len(pool), "shape": list(pool.shape)}


def is_complete(entry: Path, pool: FilePool) -> bool:
    """Whether `entry` holds every image of `pool`: its manifest, written last, says so."""
    try:
        return json.loads((entry / MANIFEST_FILE).read_text()) == _manifest(pool)
    except (OSError, ValueError):
        return False


def _write(pool: FilePool, root: Path, entry: Path) -> None:
    """Decode the pool into a folder of its own, then rename it to `entry`; never a half entry."""
    partial = root / f"{entry.name}{PARTIAL_MARK}{socket.gethostname()}-{os.getpid()}"
    try:
        partial.mkdir(parents=True, exist_ok=True)

        def store(indices, batch):
            for index, pixels in zip(indices, batch):
                (partial / f"{index}.u8").write_bytes(pixels.tobytes())

        _decode_all(pool, store)
        (partial / MANIFEST_FILE).write_text(json.dumps(_manifest(pool)))
        os.replace(partial, entry)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        if not is_complete(entry, pool):  # unless another process finished the same entry first
            raise _cache_write_error(root, error) from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


# Shared locks on the entries this process reads, held until it exits.
_READING: list = []


def on_disk(pool: FilePool) -> tuple[FilePool, Path]:
    """The pool's images as raw pixel files in a disk cache entry, decoded now unless already there."""
    root = images_cache_dir()
    entry = root / entry_key(pool)
    if not is_complete(entry, pool):
        damaged = [entry] if entry.exists() and not is_complete(entry, pool) else []  # complete ones appear whole
        remove_entries(stale_entries(root) + damaged)
        _write(pool, root, entry)
    try:
        marker = open(entry / LAST_USED_FILE, "a")  # held open for the process's life
        os.utime(marker.fileno())
        fcntl.flock(marker, fcntl.LOCK_SH)
        _READING.append(marker)
    except OSError:
        pass  # a read-only cache still serves; it only ages sooner
    files = np.array([str(entry / f"{index}.u8") for index in range(len(pool))], dtype=object)
    return FilePool(files, pool.labels, pool.shape, encoding="raw"), entry


def cached(
    folds: list[Splits], mode: str, budget: int | None = None, announce: Callable[[CacheReport], None] | None = None,
) -> tuple[list[Splits], CacheReport | None]:
    """`folds` with their training and validation images decoded as `mode` (auto|memory|disk|none) says.

    Pools shared between splits and folds are decoded once; `announce` hears the decision
    before the decoding starts. Sources already in memory are left as they are (returns no
    report). Raises DataUnavailable naming any file that cannot be decoded, or a cache that
    cannot be written.
    """
    pools = _image_pools(folds, ("train", "validation"))
    if not pools:
        return folds, None
    budget = available_memory() * MEMORY_BUDGET_FRACTION if budget is None else budget
    decoded_bytes = sum(pool.decoded_bytes for pool in pools.values())
    chosen = choose_cache(mode, decoded_bytes, int(budget))
    report = CacheReport(chosen, mode, decoded_bytes, int(budget))
    if announce is not None:
        announce(report)
    if chosen == CacheMode.none:
        return folds, report
    replaced: dict[int, ArrayPool | FilePool] = {}
    entries = []
    for key, pool in pools.items():
        if chosen == CacheMode.memory:
            replaced[key] = in_memory(pool)
            continue
        try:
            replaced[key], entry = on_disk(pool)
        except CacheUnwritable as error:
            if mode != CacheMode.disk:  # auto chose the disk for room; without one, decode every epoch
                report.mode, report.fallback = CacheMode.none, str(error)
                if announce is not None:
                    announce(report)
                return folds, report
            raise
        entries.append(str(entry))
    report.entries = tuple(entries)

    def swap(split: Split) -> Split:
        return Split(replaced.get(id(split.pool), split.pool), split.indices)

    return [replace(splits, train=swap(splits.train), validation=swap(splits.validation)) for splits in folds], report
