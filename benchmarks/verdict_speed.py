"""How long `dlcli verdict` takes on long histories, as whole processes.

Writes made-up Keras CSVLogger files (a validation loss with 2% noise around a plateau, the
training loss falling) of 100, 1,000 and 10,000 epochs, flat or climbing from the middle, and
times `dlcli verdict FILE --format json` on each (the median of `--repeats`), beside
`dlcli --help` for the start-up. The verdict reads a history one epoch at a time, as training
does, so its time grows with the square of the epochs; the target is a second or two for
1,000 epochs (a small table net trained long) and under a minute for 10,000.

    python benchmarks/verdict_speed.py [--repeats 3] [--longest 10000]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DLCLI = [sys.executable, "-m", "dlcli"]
LENGTHS = (100, 1_000, 10_000)


def write_history(path: Path, epochs: int, climbs: bool) -> None:
    generator = random.Random(0)
    turn = epochs // 2
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss", "val_loss"])
        for epoch in range(epochs):  # a CSVLogger counts epochs from 0
            climb = 0.001 * (epoch - turn) if climbs and epoch > turn else 0.0
            writer.writerow([epoch, 1 / (epoch + 1), 0.5 + 0.01 * generator.gauss(0, 1) + climb])


def timed(command: list[str], repeats: int) -> tuple[float, str]:
    times, output = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--longest", type=int, default=LENGTHS[-1], help="leave out longer histories")
    arguments = parser.parse_args()
    startup, _ = timed([*DLCLI, "--help"], arguments.repeats)
    print(f"dlcli --help: {startup:.2f} s")
    print("| epochs | shape | seconds | warned at |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for epochs in (length for length in LENGTHS if length <= arguments.longest):
            for climbs in (False, True):
                path = Path(folder) / f"{epochs}-{'climbing' if climbs else 'flat'}.csv"
                write_history(path, epochs, climbs)
                seconds, output = timed([*DLCLI, "verdict", str(path), "--format", "json"], arguments.repeats)
                warned = json.loads(output)[0]["warned_at_epoch"]
                shape = f"climbing from {epochs // 2 + 1}" if climbs else "flat"
                print(f"| {epochs:,} | {shape} | {seconds:.1f} | {warned or '–'} |", flush=True)


if __name__ == "__main__":
    main()
