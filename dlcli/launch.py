"""The `dlcli` program's entry point. A stop signal is answered from the process's first
instant: SIGTERM (and SIGINT) raise KeyboardInterrupt before the command line is even imported,
so a `kill` at any moment ends with exit 130 and one line, never a silent 143."""

from __future__ import annotations

import os
import sys

from dlcli import stopping


def main() -> None:
    stopping.install(stopping.interrupt)
    # Pydantic looks for plugins (observability hooks for services) in every installed package's
    # entry points the first time it builds a schema: 6-10 ms of each command's start, for hooks a
    # command-line run has no use for. A user who wants them sets the variable to an empty string.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        from dlcli.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("stopped: interrupted while starting\n")
        sys.exit(stopping.EXIT_INTERRUPTED)
    run()
