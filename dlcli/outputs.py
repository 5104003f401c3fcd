"""A command's output files: never one of its inputs, and never half written. An output is
written to a temporary file beside it and renamed onto it at the end, so a command that fails
leaves the old file as it was. A stream (a device, a pipe, /dev/stdout) is written to as it is:
it has no old content to keep, and what was written before a failure stays written."""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from dlcli.errors import DlcliError, broken_link, path_shown

# the process's umask, read once: a file written through a temporary gets the mode open() gives
UMASK = os.umask(0)
os.umask(UMASK)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def within(path: Path, data: Path) -> bool:
    """Whether `path` is the file or folder `data`, or lies inside the folder `data` (links followed)."""
    if data.is_dir():
        folder, written = Path(os.path.realpath(data)), Path(os.path.realpath(path))
        return written == folder or folder in written.parents
    return _same_file(path, data)


def refuse_inputs(outputs: Iterable[Path], inputs: Iterable[Path], option: str = "--output") -> None:
    """Refuse (exit 2) an output that is one of the command's input files: writing it would destroy it."""
    inputs = [path for path in inputs if not path.is_dir()]
    for output in outputs:
        for source in inputs:
            if _same_file(output, source):
                raise DlcliError(f"{option} {output} is the input {source}: writing it would destroy it; choose another file")


def temporary_beside(path: Path) -> tuple[int, str]:
    """mkstemp's (descriptor, name) in `path`'s folder; a folder that cannot take it is an error
    about `path`, the file the user named, not about the temporary file."""
    try:
        return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"its folder {path.parent} does not exist; make it first, or give "
                                "another path", str(path)) from None
    except NotADirectoryError:
        raise NotADirectoryError(errno.ENOTDIR, f"{file_as_folder(path)} is a file, not a folder; give another path",
                                 str(path)) from None
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None


def file_as_folder(path: Path) -> Path | None:
    """The file among `path`'s folders, if one is a file: nothing can be written under it."""
    return next((folder for folder in reversed(path.parents) if folder.exists() and not folder.is_dir()), None)


def unusable_output(path: Path, folder: bool = False) -> str | None:
    """Why nothing can be written at `path` (a file; with `folder`, a folder to write files into),
    found before any work rather than by the first write; None when it may be written."""
    if (blocking := file_as_folder(path)) is not None:
        return f"{path_shown(blocking)} is a file, not a folder; give another path"
    for link in [*reversed(path.parents), *([path] if folder else [])]:  # a file's own link is written through
        if broken := broken_link(link):
            return f"{'' if link == path else path_shown(link) + ' '}{broken}; remove the link or give another path"
    if folder and path.exists() and not path.is_dir():
        return "is a file; give a new or empty folder"
    if not folder and path.is_dir():
        return "is a folder; give the name of a file to write"
    return None


def is_stream(path: Path) -> bool:
    """A device, a pipe, or a name for one (/dev/stdout, /proc/self/fd/1, a shell's >(...)), which
    are written to, not replaced: /dev/stdout may stand for a file the shell opened for the command."""
    if str(path).startswith(("/dev/", "/proc/")):
        return True
    return os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode)


@contextmanager
def replaced(path: Path, binary: bool = False, newline: str | None = None) -> Iterator[IO]:
    """A stream onto a temporary file beside `path` (text, or bytes with `binary`), synced and
    renamed onto `path` when the block ends without an error, removed when it does not: readers
    see the old content or the new, never half of it. The one way dlcli writes a whole file. A link's
    file is replaced, not the link; a stream (`is_stream`) is written to as it is."""
    if os.path.isdir(path):  # found before the work, and named as the user gave it, not as the temporary
        raise IsADirectoryError(errno.EISDIR, "is a folder; give the name of a file to write", str(path))
    text = {} if binary else {"encoding": "utf-8", "newline": newline}
    if is_stream(path):  # appended to, as a shell's >> would: /dev/stdout may be a file the shell opened
        try:
            with open(path, "ab" if binary else "a", **text) as stream:
                yield stream
        except OSError as error:  # a write the device refuses (/proc/version) names no file: say which
            if error.errno != errno.EINVAL or error.filename:  # the caller's own errors, and a reader gone, as they are
                raise
            raise DlcliError(f"{path}: takes no writes ({error.strerror}); give a file or a stream that does") from None
        return
    path = Path(os.path.realpath(path))  # through a link: the file it points at is the one replaced, the link kept
    descriptor, temporary = temporary_beside(path)
    try:
        os.fchmod(descriptor, 0o666 & ~UMASK)  # not mkstemp's 0600, which would hide runs from other users
        with os.fdopen(descriptor, "wb" if binary else "w", **text) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write a file so that readers see the old or the new content, never half of it."""
    with replaced(path, binary=isinstance(content, bytes), newline="") as file:
        file.write(content)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
