"""The errors a user can cause, each with the exit code the CLI gives it."""

import json
import os
import re
from pathlib import Path

from dlcli.stopping import EXIT_INTERRUPTED

# What a library's error message wraps around its reason: terminal colours, TensorFlow's kernel
# and op names, Keras's "Exception encountered when calling X.call()." line above the reason.
_DECORATION = re.compile(r"\x1b\[[0-9;]*m|^\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$", re.MULTILINE)
_WRAPPER = re.compile(r"^Exception encountered when calling ")


def reason_of(error: BaseException) -> str:
    """The first line of `error`'s message that says why (Keras's, TensorFlow's, a parser's), or its type's name."""
    lines = [line.strip() for line in _DECORATION.sub("", str(error)).splitlines()]
    reasons = [line for line in lines if line and not _WRAPPER.match(line)]
    return reasons[0] if reasons else type(error).__name__


def file_problem(error: Exception) -> str:
    """Why a file could not be read, in words: an OSError's reason (not its class and errno), where
    text is not UTF-8, or the first line of another error, cut at a word."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    if isinstance(error, json.JSONDecodeError):  # cut short, or edited by hand: where it breaks
        return f"not whole JSON: {error.msg.lower()}, line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text: byte {error.object[error.start]:#04x} at position {error.start}"
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return first if len(first) <= 80 else first[:80].rsplit(" ", 1)[0] + "..."


def kind_of(value) -> str:
    """What a parsed YAML or JSON value is, in the words of those formats ('a list', 'null'), not
    Python's type names ('NoneType', 'int')."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else f"a {type(value).__name__}"


def cut(text: str, most: int = 60) -> str:
    """Text a message echoes, at most `most` characters: a value of thousands is cut, not echoed whole."""
    return text if len(text) <= most else text[: most - 3] + "..."


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """'1 row', '3 rows' ('1 class', '3 classes' with its `plural`): a count in a message, its noun agreeing."""
    return f"{number} {noun if number == 1 else plural or f'{noun}s'}"


# The most names a message lists (columns, classes): a line stays readable when a table has hundreds.
LISTED = 12


def listed(names) -> str:
    """'a, b, c', or the first LISTED names and how many more."""
    names = [str(name) for name in names]
    more = f", ... and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return ", ".join(names[:LISTED]) + more


# The separators a CSV file may use: a CSVLogger(separator=...) file's, a spreadsheet's saved in a
# locale whose decimal mark is the comma (no Keras metric's name holds any of them).
CSV_SEPARATORS = (",", ";", "\t", "|")


def other_separator(header: list[str]) -> str | None:
    """The separator a header read as comma-separated is made of, when it is one column holding
    another (a spreadsheet's export where the comma is the decimal mark: `f0;f1;label`); else None."""
    if len(header) != 1:
        return None
    return next((separator for separator in CSV_SEPARATORS[1:] if separator in header[0]), None)


def column_named_twice(header: list[str]) -> str | None:
    """What is wrong with a table header that names a column twice, or None. A reader would take
    one copy for the other without a word (pandas reads the second as `name.1`, csv.DictReader
    keeps the last). Columns without a name (a spreadsheet's trailing commas) are no such column."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen and name:
            return f"the header names column {name!r} twice (columns {seen[name]} and {number}); give each column its own name"
        seen[name] = number
    return None


class DlcliError(Exception):
    """A problem the user can fix; the CLI prints it as one line, after `label`."""

    exit_code = 2
    label = "error"

    def __init__(self, message: str):
        # One line, whatever a config key or a file name holds.
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


class ConfigError(DlcliError):
    """The config file or an override is invalid; `key`, when known, is the key path it is about."""

    def __init__(self, message: str, key: tuple[str | int, ...] | None = None):
        super().__init__(message)
        self.key = key


class DataUnavailable(DlcliError):
    """A dataset cannot be loaded on this machine (not cached, no network, missing files)."""


class RunNotFound(DlcliError):
    """A run reference matches no run, or more than one."""


class TrainingFailed(DlcliError):
    """Training started but could not finish."""

    exit_code = 1


class TrainingInterrupted(DlcliError):
    """Ctrl-C or SIGTERM stopped training; the run folder keeps what was done."""

    exit_code = EXIT_INTERRUPTED
    label = "stopped"


class TrainingDiverged(DlcliError):
    """The loss became NaN or infinite; the run keeps its last good model."""

    exit_code = 1


class SomeInputsFailed(DlcliError):
    """Some inputs could not be read; the others were answered."""

    exit_code = 1


class ExportMismatch(DlcliError):
    """An exported model disagrees with the Keras model it came from; it was removed."""

    exit_code = 1


def path_shown(path: str | os.PathLike) -> str:
    """A path as a line can show it: a byte that is not UTF-8 as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def broken_link(path: Path) -> str | None:
    """Where `path` points, when it is a link to nothing (left behind by a move)."""
    if path.is_symlink() and not path.exists():
        return f"is a link to {path_shown(os.readlink(path))}, which does not exist"
    return None


# How much of what a decoder was given tells a binary file from text.
BINARY_SNIFF = 8192
# The byte-order marks of text in UTF-32 and UTF-16 (UTF-32's first: it begins as UTF-16's does).
WIDE_TEXT_MARKS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
                   (b"\xfe\xff", "UTF-16"))


def not_utf8(path: Path) -> str | None:
    """The first line of `path` that is not UTF-8, said with its byte; None when every line is
    (a decoder names a position in the chunk it was decoding, not a line)."""
    with open(path, "rb") as file:
        for number, line in enumerate(file, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                column = len(line[:bad.start].decode("utf-8")) + 1  # in characters, as an editor counts
                return (f"{path}, line {number}: byte {line[bad.start]:#04x} at column {column} is not UTF-8 "
                        "(the file was saved in another encoding, such as Latin-1)")
    return None


def not_utf8_text(path: Path, error: UnicodeDecodeError) -> str:
    """Where `path` is not UTF-8 text, and what to do, in one line; UTF-16 or UTF-32 text is named by
    its byte-order mark, and a binary file (NUL bytes) is said to be one: saving it as UTF-8 is no
    advice for a model or a database."""
    read = bytes(error.object[:BINARY_SNIFF])  # the chunk the decoder was given: the file's start, for a BOM
    if encoding := next((name for mark, name in WIDE_TEXT_MARKS if read.startswith(mark)), None):
        return f"{path} is {encoding} text; save it as UTF-8"
    if b"\0" in read:  # which no text holds, and UTF-16 text without its mark does
        return f"{path} is a binary file (a model, a database, an archive?)"
    return f"{not_utf8(path) or f'{path}: {error.reason}'}; save it as UTF-8"
