"""Is the data what you think? Checks of the splits as dlcli makes them, before the first epoch.

- **Exact duplicates**, by content, never by file name: an image file's bytes, an array
  example's values (a table's row, an image's pixels), a text with its case and spacing
  normalized. Reported within the training split, and across training, validation and test.
- **Near-duplicate images** across splits: the same picture resized, re-encoded or re-saved
  in another format. Pictures of at least `SMALLEST_PICTURE` pixels a side only: a smaller one
  (MNIST's 28x28 digits, scikit-learn's 8x8) is alike its neighbours by nature. Three stages,
  each cheaper than the next: imagehash's perceptual hash (256 bits: the signs of a picture's
  16 x 16 lowest DCT frequencies) proposes the pairs whose 64 lowest-frequency bits are within
  `NEAR_BITS` of each other, found through `NEAR_BITS + 1` bands of those bits (two keys that
  close agree exactly on at least one band, so only a band's bucket is compared: a sort, not
  all pairs); a pair is kept when its whole hashes are within `NEAR_BITS_WHOLE` bits, and
  confirmed when the two pictures' grey `CONFIRM_SIDE`-pixel thumbnails correlate at least
  `CONFIRM_CORRELATION`. docs/data-checks.md has the measurements behind the numbers.
- **Conflicting labels**: identical inputs given different classes.
- **Classes**: a class missing from a split, and a training split whose largest class has
  `IMBALANCE_RATIO` times the examples of its smallest.
- **Tables**: feature columns that hold one value in every training row.

`dataset.leaks` says what to do with the validation and test examples that the training split
holds too (or, for test, the validation split): `warn`, `error` (before the run folder exists)
or `drop` them. The findings are cached by the splits' fingerprints: a second run of the same
data reads them back. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlcli.choices import Choice, InputKind, Leaks
from dlcli.data.cache import UNUSED_DAYS, cache_root
from dlcli.data.examples import FilePool, Split, Splits, TablePool
from dlcli.data.pictures import (
    HASH_SIDE,
    HASHED_AT_ONCE,
    SMALLEST_PICTURE,
    grey_picture,
    hash_bytes,
    hash_words,
    perceptual_hashes,
    read_files,
    read_records,
)
from dlcli.errors import DataUnavailable, counted
from dlcli.outputs import write_atomic

if TYPE_CHECKING:
    from dlcli.config import ExperimentConfig

CHECKS_VERSION = 4  # part of the cache key: findings of another version are found again (4: nouns agree with counts)
NEAR_BITS = 8  # of the 64 lowest-frequency bits, to propose a pair
NEAR_BITS_WHOLE = 48  # of the 256, to keep it
BUCKET_AT_ONCE = 2048  # hashes of one bucket compared at once (2 million pairs)
# Partners kept per hash: thousands of near-blank pictures are all near each other, and their
# pairs would fill the memory; a pair is kept while one of its two still has room.
PARTNERS_KEPT = 16
CONFIRM_SIDE = 128
CONFIRM_CORRELATION = 0.98
IMBALANCE_RATIO = 5
SHOWN = 3  # classes or columns a line names
HELD_OUT = ("validation", "test")
# what a held-out split is compared with: what trained the model, and what chose it
EARLIER = {"validation": ("train",), "test": ("train", "validation")}


class FindingKind(Choice):
    exact_duplicate = "exact_duplicate"
    near_duplicate = "near_duplicate"
    conflicting_label = "conflicting_label"
    missing_class = "missing_class"
    class_imbalance = "class_imbalance"
    constant_column = "constant_column"
    similar_classes = "similar_classes"


@dataclass
class Finding:
    """One thing found: its kind, the splits (the one whose examples are counted first), how many
    examples, every example involved by file or row (each inner list one set of copies), a line
    that says it and what to do, and the held-out examples it would drop (`leaks: drop`)."""

    kind: FindingKind
    splits: list[str]
    count: int
    examples: list[list[str]]
    message: str
    drop: dict[str, list[int]] = field(default_factory=dict)  # split -> positions in that split

    @property
    def leak(self) -> bool:
        return bool(self.drop)

    def as_dict(self) -> dict[str, Any]:
        """As `check --format json` and summary.json give it: the positions to drop are the cache's."""
        shown = {key: value for key, value in asdict(self).items() if key != "drop"}
        return {**shown, "kind": self.kind.value, "leak": self.leak}

    def stored(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{**data, "kind": FindingKind(data["kind"])})


@dataclass
class Examples:
    """The examples of the three splits as one list: which split, which position, how each is named."""

    splits: list[str]  # per example
    positions: np.ndarray  # per example: its position in its split
    names: list[str]  # per example: a file, or a row of the source
    labels: np.ndarray | None  # classes (None for regression)

    def named(self, members) -> list[str]:
        return [f"{self.splits[m]}: {self.names[m]}" for m in members]


# --- what is compared --------------------------------------------------------------------------


def _normalized_text(text) -> bytes:
    return " ".join(str(text).lower().split()).encode()


def _coarse(hashes: np.ndarray) -> np.ndarray:
    """Each hash's 64 bits of the 8 x 8 lowest frequencies: the key the search buckets by."""
    bits = np.unpackbits(hashes.astype(">u8").view(np.uint8), axis=1).reshape(len(hashes), HASH_SIDE, HASH_SIDE)
    return np.packbits(bits[:, :8, :8].reshape(len(hashes), 64), axis=1).view(">u8").ravel().astype(np.uint64)


def _array_picture(example: np.ndarray):
    from PIL import Image

    if example.dtype == np.uint8:
        pixels = example
    else:  # any range (0-1, 0-255, standardized): the hash reads the picture's shape, not its scale
        low, high = float(example.min()), float(example.max())
        pixels = ((example - low) / ((high - low) or 1.0) * 255).astype("uint8")
    return Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels[..., :3])


def _is_picture(pool) -> bool:
    if isinstance(pool, FilePool):
        return True
    if isinstance(pool, TablePool):
        return False
    return pool.x.ndim == 4 and pool.x.shape[-1] in (1, 3, 4) and min(pool.x.shape[1:3]) >= SMALLEST_PICTURE


class ReadAhead:
    """`python -m dlcli.data.pictures LIST`: a process of its own that reads and hashes the image files
    listed while this one imports TensorFlow (one core busy, the other idle for about 2 seconds:
    threads here would fight that import for the GIL). It answers through a file (`pictures.read_records`)."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        descriptor, self.listing = tempfile.mkstemp(prefix="dlcli-checks-", suffix=".paths")
        with os.fdopen(descriptor, "wb") as listing:
            listing.write(b"\0".join(os.fsencode(path) for path in paths))
        # its answer goes to a file, not a pipe: a pipe would stop it at 64 KB until read
        self.answer = f"{self.listing}.read"
        self.process = subprocess.Popen([sys.executable, "-m", "dlcli.data.pictures", self.listing, self.answer],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.stop)

    def results(self) -> dict[str, tuple[bytes, np.ndarray | None]]:
        """What it read, by path; empty when it failed (the checks then read the files themselves)."""
        self.process.wait()
        try:
            output = Path(self.answer).read_bytes()
        except OSError:
            output = b""
        self.stop()
        records = read_records(output, len(self.paths)) if self.process.returncode == 0 else None
        return dict(zip(self.paths, records)) if records is not None else {}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for path in (self.listing, self.answer):
            with contextlib.suppress(OSError):
                os.unlink(path)


_read_ahead: list[ReadAhead] = []


def read_ahead(splits: Splits, config: ExperimentConfig, kfold: bool = False) -> None:
    """Start reading the image files of `splits` for their checks, in a process of its own
    (`ReadAhead`), unless they were checked before."""
    if _cache_path(splits, kfold, config).is_file():
        return  # checked before: nothing to read
    paths = [str(path) for _, split in _checked_splits(splits, kfold) if isinstance(split.pool, FilePool)
             for path in split.pool.paths[split.indices]]
    known = _known_files(paths)
    unread = [path for path in paths if path not in known]
    _read.update(known)
    if unread:
        _read_ahead.append(ReadAhead(unread))


# The per-file digests and hashes have a version of their own: a new kind of finding reads no file again
FILES_VERSION = 1
FILES_DB = f"files-{FILES_VERSION}.db"


def checks_cache_dir() -> Path:
    """The checks' findings (one .json per set of splits) and their files database."""
    return cache_root() / "checks"


def _files_db() -> sqlite3.Connection:
    """Each image file's digest and hash, kept by its path, size and modification time: another
    split of the same files (another seed, another validation_split) reads none of them again."""
    folder = checks_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(folder / FILES_DB, timeout=10, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, "
                       "digest BLOB, hash BLOB)")
    return connection


def _stamp(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


def _known_files(paths: list[str]) -> dict[str, tuple[bytes, np.ndarray | None]]:
    """What the files database knows of `paths` that still holds (same size and time); {} when it cannot be read."""
    known = {}
    try:
        with contextlib.closing(_files_db()) as connection:
            for first in range(0, len(paths), 500):
                part = paths[first:first + 500]
                rows = connection.execute(
                    f"SELECT path, size, mtime, digest, hash FROM files WHERE path IN ({', '.join('?' * len(part))})", part,
                ).fetchall()
                for path, size, mtime, digest, words in rows:
                    with contextlib.suppress(OSError):  # a file gone since: the pipeline says so
                        if _stamp(path) != (size, mtime):
                            continue
                        known[path] = (digest, hash_words(words) if words else None)
    except (sqlite3.Error, OSError):
        return {}
    return known


def _remember_files(read: dict[str, tuple[bytes, np.ndarray | None]]) -> None:
    try:
        with contextlib.closing(_files_db()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", [
                (path, *_stamp(path), digest, hash_bytes(words) if words is not None else None)
                for path, (digest, words) in read.items()
            ])
            connection.execute("COMMIT")
    except (sqlite3.Error, OSError):
        pass  # an unwritable cache only costs the next run the reading


_read: dict[str, tuple[bytes, np.ndarray | None]] = {}  # what the read-ahead process said, until the checks take it


def _read_ahead_results() -> dict[str, tuple[bytes, np.ndarray | None]]:
    while _read_ahead:
        _read.update(_read_ahead.pop().results())
    return _read


def _fingerprints(
    examples: list[tuple[str, Split]], texts: bool, ignored_features: int = 0,
) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Every example's content digest, and the perceptual hashes of those that are pictures of at
    least SMALLEST_PICTURE pixels a side (the examples' numbers, their hashes)."""
    digests: list[bytes] = []
    pictured: list[int] = []
    hashes: list[np.ndarray] = []
    for _, split in examples:
        pool, start = split.pool, len(digests)
        if isinstance(pool, FilePool):
            ready = _read_ahead_results()
            paths = [str(path) for path in pool.paths[split.indices]]
            ready.update(_known_files([path for path in paths if path not in ready]))
            missing = [path for path in paths if path not in ready]
            for first in range(0, len(missing), HASHED_AT_ONCE):
                part = missing[first:first + HASHED_AT_ONCE]
                ready.update(zip(part, read_files(part)))
            _remember_files({path: ready[path] for path in paths})
            for number, path in enumerate(paths):
                digest, words = ready.pop(path)
                digests.append(digest)
                if words is not None:
                    pictured.append(start + number)
                    hashes.append(words[None])
            continue
        if isinstance(pool, TablePool):  # a row: all its inputs, texts normalized
            contents = [_contents(x[split.indices], x.dtype == object and x.ndim == 1) for x in pool.inputs.values()]
            digests += [hashlib.blake2b(b"\0".join(row), digest_size=16).digest() for row in zip(*contents)]
            continue
        x = pool.x[split.indices]
        if texts:
            digests += [hashlib.blake2b(_normalized_text(text), digest_size=16).digest() for text in x]
        else:
            if ignored_features:  # `dataset.noise_features` appended: the examples are what came before them
                x = x.reshape(len(x), -1)[:, :-ignored_features]
            digests += [hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest() for row in x]
        if _is_picture(pool):
            for first in range(0, len(x), HASHED_AT_ONCE):
                part = x[first:first + HASHED_AT_ONCE]
                hashes.append(perceptual_hashes(np.stack([grey_picture(_array_picture(e)) for e in part])))
                pictured += range(start + first, start + first + len(part))
    words = HASH_SIDE * HASH_SIDE // 64
    return digests, np.array(pictured, dtype=np.int64), np.concatenate(hashes) if hashes else np.empty((0, words), np.uint64)


def _contents(x: np.ndarray, texts: bool) -> list[bytes]:
    """Each row of `x` as bytes: a text normalized (case and spacing), other values as stored."""
    if texts:
        return [_normalized_text(text) for text in x]
    if x.dtype == object:
        return ["\0".join(map(str, row)).encode() for row in x]
    return [np.ascontiguousarray(row).tobytes() for row in x]


def _names(name: str, split: Split, root: Path | None, csv: bool) -> list[str]:
    pool = split.pool
    if isinstance(pool, FilePool):  # each file under the dataset's folder, as the folder's listing spelled it
        prefix = os.path.join(str(root), "") if root else None
        return [str(path)[len(prefix):] if prefix and str(path).startswith(prefix) else _relative(path, root)
                for path in pool.paths[split.indices]]
    rows = pool.row_numbers[split.indices]
    if csv:
        return [f"line {row}" for row in rows]
    if pool.rows is not None:  # split here from one array (mnist_5k, digits): its row
        return [f"row {row}" for row in rows]
    source = "test" if name == "test" else "train"  # a validation split is drawn from the source's training examples
    return [f"{source}[{row}]" for row in rows]


def _relative(path, root: Path | None) -> str:
    try:
        return str(Path(path).relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


# --- the searches -------------------------------------------------------------------------------


def close_pairs(hashes: np.ndarray, bits: int = NEAR_BITS, groups: np.ndarray | None = None) -> np.ndarray:
    """The pairs (i < j) of 64-bit hashes within `bits` differing bits (of different `groups` when
    given), found through `bits` + 1 bands: two hashes that close agree exactly on one band at
    least (pigeonhole), so only the hashes sharing a band's value are compared — a sort per band,
    not every pair. A bucket larger than BUCKET_AT_ONCE (many near-blank pictures) is compared a
    row at a time, and a pair is kept only while one of its hashes has fewer than PARTNERS_KEPT
    partners, so that memory stays bounded whatever the data (at most 2 × PARTNERS_KEPT pairs a
    hash); a hash with a close partner always keeps one."""
    edges = np.linspace(0, 64, bits + 2).astype(int)
    found = []
    partners = np.zeros(len(hashes), dtype=np.int64)

    def keep(left: np.ndarray, right: np.ndarray) -> None:
        near = np.bitwise_count(hashes[left] ^ hashes[right]) <= bits
        if groups is not None:
            near &= groups[left] != groups[right]
        left, right = left[near], right[near]
        room = (_ranks(left) < PARTNERS_KEPT - partners[left]) | (_ranks(right) < PARTNERS_KEPT - partners[right])
        left, right = left[room], right[room]
        np.add.at(partners, left, 1)
        np.add.at(partners, right, 1)
        found.append(np.stack([np.minimum(left, right), np.maximum(left, right)], axis=1))

    for low, high in zip(edges[:-1], edges[1:]):
        band = (hashes >> np.uint64(low)) & np.uint64((1 << int(high - low)) - 1)
        order = np.argsort(band, kind="stable")
        ordered = band[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
            members = order[start:start + size]
            if size <= BUCKET_AT_ONCE:
                first, second = np.triu_indices(size, 1)
                keep(members[first], members[second])
            else:
                for row in range(size - 1):
                    keep(np.full(size - row - 1, members[row]), members[row + 1:])
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(found), axis=0)


def _ranks(members: np.ndarray) -> np.ndarray:
    """Each entry's place among the entries of the same value, in order: [7, 3, 7, 7] -> [0, 0, 1, 2]."""
    order = np.argsort(members, kind="stable")
    ordered = members[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.empty(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
    ranks = np.empty(len(members), dtype=np.int64)
    ranks[order] = np.arange(len(members)) - first
    return ranks


def _thumbnail(examples: list[tuple[str, Split]], member: int) -> np.ndarray:
    """A picture's grey CONFIRM_SIDE-pixel thumbnail, centred and scaled to unit length."""
    from PIL import Image

    offset = 0
    for _, split in examples:
        if member < offset + len(split):
            position = split.indices[member - offset]
            pool = split.pool
            break
        offset += len(split)
    if isinstance(pool, FilePool):
        with Image.open(pool.paths[position]) as image:
            image.draft("L", (CONFIRM_SIDE, CONFIRM_SIDE))
            picture = image.convert("L").resize((CONFIRM_SIDE, CONFIRM_SIDE), Image.Resampling.BILINEAR)
    else:
        picture = _array_picture(pool.x[position]).convert("L").resize(
            (CONFIRM_SIDE, CONFIRM_SIDE), Image.Resampling.BILINEAR)
    values = np.asarray(picture, dtype=np.float64)
    values = values - values.mean()
    length = np.sqrt((values * values).sum())
    return values / length if length else values


def _confirmed(pairs: np.ndarray, examples: list[tuple[str, Split]]) -> np.ndarray:
    thumbnails: dict[int, np.ndarray] = {}

    def thumbnail(member: int) -> np.ndarray:
        if member not in thumbnails:
            thumbnails[member] = _thumbnail(examples, int(member))
        return thumbnails[member]

    keep = [float((thumbnail(i) * thumbnail(j)).sum()) >= CONFIRM_CORRELATION for i, j in pairs]
    return pairs[np.array(keep, dtype=bool)] if len(pairs) else pairs


# --- the findings -------------------------------------------------------------------------------


def group_text(group: list[str]) -> str:
    """A set of examples that are one (copies, or one input under several labels), its first
    SHOWN named: a picture copied a thousand times is one line, not a thousand names."""
    more = f" ~ ... and {len(group) - SHOWN} more" if len(group) > SHOWN else ""
    return " ~ ".join(group[:SHOWN]) + more


def _first(listed: list[list[str]]) -> str:
    return group_text(listed[0]) if listed else ""


def _leak_message(kind: FindingKind, held: str, earlier: str, count: int, listed: list[list[str]], dropped: bool) -> str:
    """What a leak finding says: the held-out examples an earlier split holds too, and what to do,
    or, once `dataset.leaks: drop` removed them, that it did."""
    what = "exact copies" if kind == FindingKind.exact_duplicate else "near-duplicates (the same picture resized or re-encoded)"
    found = f"{counted(count, f'{held} example')} {'has' if count == 1 else 'have'} {what} in {earlier} (first: {_first(listed)})"
    them = "it" if count == 1 else "them"
    if dropped:
        return f"{found}; `dataset.leaks: drop` left {them} out of {held}"
    inflated = "validation score (and the choices made on it)" if held == "validation" else "test score"
    return f"{found}; the {inflated} is inflated: remove {them}, or set `dataset.leaks: drop`"


def _duplicate_findings(kind: FindingKind, groups: list[list[int]], data: Examples) -> list[Finding]:
    """Per held-out split, its examples with a copy in an earlier split; and copies within train."""
    findings = []
    for held in HELD_OUT:
        for earlier in EARLIER[held]:
            involved = [
                [m for m in group if data.splits[m] in (held, earlier)] for group in groups
                if any(data.splits[m] == held for m in group) and any(data.splits[m] == earlier for m in group)
            ]
            if not involved:
                continue
            positions = sorted({int(data.positions[m]) for group in involved for m in group if data.splits[m] == held})
            listed = [data.named(sorted(group, key=lambda m: data.splits[m] != held)) for group in involved]
            findings.append(Finding(
                kind, [held, earlier], len(positions), listed,
                _leak_message(kind, held, earlier, len(positions), listed, dropped=False), drop={held: positions},
            ))
    if kind == FindingKind.exact_duplicate:
        within = [[m for m in group if data.splits[m] == "train"] for group in groups]
        within = [group for group in within if len(group) > 1]
        if within:
            copies = sum(len(group) - 1 for group in within)
            listed = [data.named(group) for group in within]
            findings.append(Finding(
                kind, ["train"], copies, listed,
                f"{counted(copies, 'training example')} {'is an exact copy' if copies == 1 else 'are exact copies'} of "
                f"{'another' if copies == 1 else 'others'} (first: {_first(listed)}); each copy weighs its example "
                f"double: remove {'it' if copies == 1 else 'them'}",
            ))
    return findings


def _conflicts(groups: list[list[int]], data: Examples, class_names: list[str]) -> list[Finding]:
    conflicting = [group for group in groups if len({int(data.labels[m]) for m in group}) > 1]
    if not conflicting:
        return []
    listed = [[f"{name} ({class_names[int(data.labels[m])]})" for name, m in zip(data.named(group), group)]
              for group in conflicting]
    splits = sorted({data.splits[m] for group in conflicting for m in group}, key=["train", *HELD_OUT].index)
    return [Finding(
        FindingKind.conflicting_label, splits, len(conflicting), listed,
        f"{counted(len(conflicting), 'input')} {'appears' if len(conflicting) == 1 else 'appear'} with different labels "
        f"(first: {_first(listed)}); no model can get "
        "both right: fix the labels",
    )]


def _spelling(name: str) -> str:
    """What a class name says, however it is written: its number ('7', '07', '7.0'), else its words
    without case or extra spaces, NFKC-normalized ('café' typed or pasted, one code point or two)."""
    words = " ".join(unicodedata.normalize("NFKC", name).split()).casefold()
    try:
        number = float(words)
    except ValueError:
        return words
    return f"the number {number!r}" if math.isfinite(number) else words


def _similar_classes(class_names: list[str]) -> list[Finding]:
    """Class names that differ only in case, spacing or how a number is written ('Dog', 'dog '; '7',
    '07'): one class written two ways."""
    spellings: dict[str, list[str]] = {}
    for name in class_names:
        spellings.setdefault(_spelling(name), []).append(name)
    sets = [names for names in spellings.values() if len(names) > 1]
    if not sets:
        return []
    shown = " and ".join(repr(name) for name in sets[0])
    more = f" (and {counted(len(sets) - 1, 'more such set')})" if len(sets) > 1 else ""
    return [Finding(
        FindingKind.similar_classes, ["train"], sum(map(len, sets)), sets,
        f"classes {shown}{more} differ only in case, spaces or how a letter or a number is typed: one class written "
        "two ways? write each label one way",
    )]


def _class_findings(counts: dict[str, list[int]], class_names: list[str]) -> list[Finding]:
    findings = _similar_classes(class_names)
    for split, per_class in counts.items():
        if not sum(per_class):
            continue
        missing = [class_names[c] for c, count in enumerate(per_class) if count == 0]
        if missing:
            classes, them = counted(len(missing), "class", "classes"), "it" if len(missing) == 1 else "them"
            # a class the training split lacks is never learned; one another split lacks is never scored
            effect = f"the model never learns {them}" if split == "train" else f"its scores say nothing of {them}"
            findings.append(Finding(
                FindingKind.missing_class, [split], len(missing), [[f"class {name}" for name in missing]],
                f"the {split} split has no example of {classes} ({', '.join(missing[:SHOWN])}"
                f"{' ...' if len(missing) > SHOWN else ''}): {effect}; add examples",
            ))
    train = counts.get("train", [])
    present = [count for count in train if count]
    if len(present) > 1 and max(present) >= IMBALANCE_RATIO * min(present):
        largest, smallest = int(np.argmax(train)), min(range(len(train)), key=lambda c: train[c] or np.inf)
        findings.append(Finding(
            FindingKind.class_imbalance, ["train"], len(train), [[f"{name}: {count}" for name, count in zip(class_names, train)]],
            f"the training classes are imbalanced ({class_names[largest]!r} {train[largest]}, {class_names[smallest]!r} "
            f"{train[smallest]}): accuracy rewards the large classes; read the per-class scores (`dlcli evaluate`)",
        ))
    return findings


def _constant_columns(train: Split, columns: list[str], x: np.ndarray | None = None) -> list[Finding]:
    """The feature columns that hold one value in every training row (`x`: those of a named input)."""
    x = train.pool.x[train.indices] if x is None else x[train.indices]
    if x.ndim != 2 or x.dtype == object or len(x) < 2:
        return []
    constant = [columns[c] if c < len(columns) else str(c) for c in np.flatnonzero((x == x[0]).all(axis=0))]
    if not constant:
        return []
    return [Finding(
        FindingKind.constant_column, ["train"], len(constant), [constant],
        f"{len(constant)} feature columns hold one value in every training row ({', '.join(constant[:SHOWN])}"
        f"{' ...' if len(constant) > SHOWN else ''}): they carry nothing; leave them out of feature_columns",
    )]


def _checked_splits(splits: Splits, kfold: bool) -> list[tuple[str, Split]]:
    """The splits checked, by name: k-fold's folds share one pool, checked whole as the training data."""
    if kfold:  # the validation fold's pool: the training fold's holds shuffled labels with `shuffle_labels`
        return [("train", Split.whole(splits.validation.pool)), ("test", splits.test)]
    chosen = [("train", splits.train), ("validation", splits.validation), ("test", splits.test)]
    return [(name, split) for name, split in chosen if len(split)]


def find_issues(splits: Splits, config: ExperimentConfig, kfold: bool = False) -> list[Finding]:
    """Every finding about `splits` (k-fold: about its whole training pool and its test split)."""
    chosen = _checked_splits(splits, kfold)
    texts = splits.encoding.vectorizer is not None
    noise = config.dataset.noise_features
    digests, pictured, hashes = _fingerprints(chosen, texts, noise.count if noise else 0)
    root = Path(config.dataset.path).expanduser() if getattr(config.dataset, "path", None) else None
    classification = bool(splits.class_names)
    data = Examples(
        [name for name, split in chosen for _ in range(len(split))],
        np.concatenate([np.arange(len(split)) for _, split in chosen]),
        [shown for name, split in chosen for shown in _names(name, split, root, config.dataset.name == "csv")],
        np.concatenate([split.labels for _, split in chosen]) if classification else None,
    )
    by_digest: dict[bytes, list[int]] = defaultdict(list)
    for member, digest in enumerate(digests):
        by_digest[digest].append(member)
    exact = [group for group in by_digest.values() if len(group) > 1]
    findings = _duplicate_findings(FindingKind.exact_duplicate, exact, data)
    if len(pictured) > 1:
        split_numbers = np.array([["train", *HELD_OUT].index(data.splits[m]) for m in pictured])
        pairs = close_pairs(_coarse(hashes), groups=split_numbers)  # proposed by the lowest frequencies ...
        whole = np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]]).sum(axis=1)
        pairs = pictured[pairs[whole <= NEAR_BITS_WHOLE]]  # ... kept when the whole hash agrees
        pairs = np.array([(i, j) for i, j in pairs if digests[i] != digests[j]], dtype=np.int64).reshape(-1, 2)
        pairs = _confirmed(pairs, chosen)  # ... and confirmed by the pictures
        findings += _duplicate_findings(FindingKind.near_duplicate, [list(pair) for pair in pairs], data)
    if classification and not config.dataset.shuffle_labels:  # shuffled labels conflict by design
        findings += _conflicts(exact, data, splits.class_names)
    if classification:
        findings += _class_findings(
            {name: np.bincount(split.labels, minlength=splits.num_classes).tolist() for name, split in chosen},
            splits.class_names,
        )
    for output, spec in splits.outputs.items():  # a table's classification outputs, each said by name
        if not spec.class_names:
            continue
        labels = {name: split.pool.targets[output][split.indices] for name, split in chosen}
        own = replace(data, labels=np.concatenate(list(labels.values())))
        said = [*_conflicts(exact, own, spec.class_names), *_class_findings(
            {name: np.bincount(values, minlength=len(spec.class_names)).tolist() for name, values in labels.items()},
            spec.class_names,
        )]
        findings += [replace(finding, message=f"output '{output}': {finding.message}") for finding in said]
    train = chosen[0][1]
    if isinstance(train.pool, TablePool):
        for name, spec in splits.inputs.items():
            if spec.kind == InputKind.features:
                findings += _constant_columns(train, spec.columns, train.pool.inputs[name])
    elif splits.input_columns and not texts and noise is None:  # appended noise or zeros are no table's columns
        findings += _constant_columns(train, splits.input_columns)
    return findings


# --- cached, and acted on --------------------------------------------------------------------


def _cache_path(splits: Splits, kfold: bool, config: ExperimentConfig) -> Path:
    """Where the findings about these splits are kept: named by what they hold (for files, their
    names, sizes and modification times), their labels and the checks' version."""
    digest = hashlib.sha256(f"{CHECKS_VERSION}:{config.dataset.shuffle_labels}:{config.dataset.name}".encode())
    for name, split in _checked_splits(splits, kfold):
        digest.update(f"{name}:{len(split)}".encode())
        split.pool.update_digest(digest, split.indices)
        if isinstance(split.pool, FilePool):  # a file edited in place keeps its name and, maybe, its size
            digest.update(np.array([os.stat(path).st_mtime_ns for path in split.pool.paths[split.indices]]).tobytes())
        digest.update(np.ascontiguousarray(split.labels).tobytes())
    digest.update(json.dumps([splits.class_names, splits.input_columns]).encode())
    return cache_root() / "checks" / f"{digest.hexdigest()[:32]}.json"


@dataclass
class DataChecks:
    findings: list[Finding]
    seconds: float
    cached: bool


def run_checks(splits: Splits, config: ExperimentConfig, kfold: bool = False) -> DataChecks:
    """`find_issues`, read back from the cache when the same data was checked before."""
    started = time.perf_counter()
    path = _cache_path(splits, kfold, config)
    try:
        findings = [Finding.from_dict(item) for item in json.loads(path.read_text())["findings"]]
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: kept by `clean_checks`
        return DataChecks(findings, time.perf_counter() - started, cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    findings = find_issues(splits, config, kfold)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({"version": CHECKS_VERSION, "findings": [f.stored() for f in findings]}))
        _remove_unused_findings(UNUSED_DAYS)
    except OSError:
        pass  # an unwritable cache only costs the next run the checks' time
    return DataChecks(findings, time.perf_counter() - started, cached=False)


def _remove_unused_findings(older_than_days: float) -> tuple[int, int]:
    """Remove the findings files unused for `older_than_days`; returns (files, bytes)."""
    cutoff, removed, freed = time.time() - older_than_days * 86400, 0, 0
    for path in checks_cache_dir().glob("*.json"):
        with contextlib.suppress(OSError):  # removed by another process meanwhile
            status = path.stat()
            if status.st_mtime < cutoff:
                path.unlink()
                removed, freed = removed + 1, freed + status.st_size
    return removed, freed


def clean_checks(older_than_days: float = UNUSED_DAYS) -> dict[str, int]:
    """Empty the checks' cache of what no run will read again: findings unused for
    `older_than_days`, the files database's rows of files since removed or changed (a row is only
    read while its file keeps its size and time), and databases of older versions (FILES_VERSION).
    Returns counts of each and the bytes freed."""
    folder = checks_cache_dir()
    findings, freed = _remove_unused_findings(older_than_days)
    databases = 0
    for old in folder.glob("files-*.db"):
        if old.name != FILES_DB:
            with contextlib.suppress(OSError):
                freed += old.stat().st_size
                old.unlink()
                databases += 1
    rows = 0
    database = folder / FILES_DB
    if database.is_file():
        before = database.stat().st_size
        try:
            with contextlib.closing(_files_db()) as connection:
                stale = []
                for path, size, mtime in connection.execute("SELECT path, size, mtime FROM files"):
                    try:
                        if _stamp(path) != (size, mtime):
                            stale.append((path,))
                    except OSError:
                        stale.append((path,))
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany("DELETE FROM files WHERE path = ?", stale)
                connection.execute("COMMIT")
                connection.execute("VACUUM")
                rows = len(stale)
        except sqlite3.Error:
            pass  # locked by a run now: its rows are cleaned another time
        freed += max(0, before - database.stat().st_size)
    return {"findings": findings, "file_rows": rows, "old_databases": databases, "bytes": freed}


def acted_on(splits: Splits, checks: DataChecks, leaks: Leaks, at: str) -> Splits:
    """The splits, with the checks' findings, as `dataset.leaks` wants them: as they are (warn),
    refused naming the first leak (error), or without the held-out examples an earlier split holds
    too (drop). `at`: where `dataset.leaks` was set, as the prefix of a message (`SourceMap.prefix`)."""
    found = [finding for finding in checks.findings if finding.leak]
    if not found or leaks == Leaks.warn:
        return replace(splits, checks=checks.findings)
    if leaks == Leaks.error:
        first = found[0]
        raise DataUnavailable(f"{at}dataset.leaks is error, and {first.message}")
    said_dropped = [  # their advice to set `leaks: drop` is done
        replace(finding, message=_leak_message(finding.kind, *finding.splits, finding.count, finding.examples, dropped=True))
        if finding.leak else finding
        for finding in checks.findings
    ]
    dropped = {name: sorted({p for finding in found for p in finding.drop.get(name, [])}) for name in HELD_OUT}
    changed = {}
    for name, positions in dropped.items():
        if positions:
            split = splits.split(name)
            kept = np.setdiff1d(np.arange(len(split)), positions)
            changed[name] = Split(split.pool, split.indices[kept])
            if not len(kept):
                raise DataUnavailable(f"{at}dataset.leaks: drop would leave the {name} split empty: every one of "
                                      f"its {len(split)} examples is in an earlier split")
    removed = {name: len(positions) for name, positions in dropped.items() if positions}
    return replace(splits, **changed, checks=said_dropped, dropped=removed)


def dropped_line(dropped: dict[str, int]) -> str:
    removed = ", ".join(f"{count} {split}" for split, count in dropped.items())
    return f"dataset.leaks: drop removed {removed} examples that an earlier split holds too"
