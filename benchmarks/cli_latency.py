"""How fast the read-only commands answer with 200 runs in the folder, as whole processes.

Trains one real run of configs/digits_dense.yaml, copies it into 200 run folders, then
times `dlcli --help`, `runs`, `compare --last 2`, `show latest` and `datasets`
(median of 5 each) against the 0.5 s target.

    python benchmarks/cli_latency.py [--runs 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.5
REPOSITORY = Path(__file__).resolve().parent.parent
COMMANDS = [["--help"], ["runs"], ["compare", "--last", "2"], ["show", "latest"], ["datasets"]]


def dlcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dlcli", *args]


def make_runs(runs_dir: Path, count: int) -> None:
    subprocess.run(
        dlcli("train", str(REPOSITORY / "configs" / "digits_dense.yaml"), "--set", "training.epochs=3",
              "--runs-dir", str(runs_dir)),
        check=True, capture_output=True,
    )
    (template,) = runs_dir.iterdir()
    for index in range(1, count):
        run_id = f"20260101-{index // 3600:02d}{index // 60 % 60:02d}{index % 60:02d}-copy-{index}"
        copy = runs_dir / run_id
        shutil.copytree(template, copy, ignore=shutil.ignore_patterns("tensorboard"))
        info = json.loads((copy / "run.json").read_text())
        info.update(id=run_id, name=f"copy-{index}")
        (copy / "run.json").write_text(json.dumps(info))


def time_command(args: list[str], runs_dir: Path, repeats: int) -> float:
    extra = ["--runs-dir", str(runs_dir)] if args[0] in ("runs", "compare", "show") else []
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(dlcli(*args, *extra), check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        runs_dir = Path(temporary) / "runs"
        make_runs(runs_dir, options.runs)
        print(f"{options.runs} runs; median of {options.repeats} whole-process runs; target {TARGET_S} s")
        slow = 0
        for args in COMMANDS:
            median = time_command(args, runs_dir, options.repeats)
            verdict = "ok" if median < TARGET_S else "SLOW"
            slow += verdict == "SLOW"
            print(f"  dlcli {' '.join(args):<20} {median:6.3f} s  {verdict}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
