"""The `dlcli` program's entry point. A stop signal is answered from the process's first
instant: SIGTERM (and SIGINT) raise KeyboardInterrupt before the command line is even imported,
so a `kill` at any moment ends with exit 130 and one line, never a silent 143."""

from __future__ import annotations

import sys

from dlcli import stopping


def main() -> None:
    stopping.install(stopping.interrupt)
    try:
        from dlcli.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("stopped: interrupted while starting\n")
        sys.exit(stopping.EXIT_INTERRUPTED)
    run()
