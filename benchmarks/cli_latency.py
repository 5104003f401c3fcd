"""How fast the read-only commands answer with many runs in the folder, as whole processes.

Trains one real run of configs/digits_dense.yaml and copies its small files (run.json,
summary.json, config.yaml, history.csv; every 10th copy with rmsprop instead of adam, every
50th crashed, 2%) into `--runs` run folders. The first `dlcli runs` builds the folder's index
(timed apart: once per folder, or after the index is deleted); then each command is timed
(median of `--repeats`) against the target: 0.3 s up to 10,000 runs, 1 s beyond.

    python benchmarks/cli_latency.py [--runs 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3
REPOSITORY = Path(__file__).resolve().parent.parent
COMMANDS = [
    ["--help"], ["runs"], ["runs", "--last", "20"], ["runs", "--status", "crashed"],
    ["runs", "--where", "optimizer.name=rmsprop", "--where", "best.val_accuracy>0.5"],
    ["compare", "--last", "2"], ["show", "latest"], ["datasets"],
]
SMALL_FILES = ("run.json", "summary.json", "config.yaml", "history.csv")


# A fresh install reads its modules' cached bytecode (pip compiles it at install, Python on first
# import); a shell that sets PYTHONDONTWRITEBYTECODE would have every process compile dlcli's modules
# from source again, 0.02-0.03 s that no user's command pays.
ENVIRONMENT = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def dlcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dlcli", *args]


def make_runs(runs_dir: Path, count: int) -> None:
    subprocess.run(
        dlcli("train", str(REPOSITORY / "configs" / "digits_dense.yaml"), "--set", "training.epochs=3",
              "--runs-dir", str(runs_dir)),
        check=True, capture_output=True,
    )
    (template,) = [path for path in runs_dir.iterdir() if path.is_dir()]
    files = {name: (template / name).read_text() for name in SMALL_FILES}
    info = json.loads(files["run.json"])
    rmsprop = files["config.yaml"].replace("name: adam", "name: rmsprop")
    for index in range(1, count):
        day, second = divmod(index, 86400)
        clock = f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"
        run_id = f"2026{1 + day // 28:02d}{1 + day % 28:02d}-{clock}-copy-{index}"
        copy = runs_dir / run_id
        copy.mkdir()
        for name in ("summary.json", "history.csv"):
            (copy / name).write_text(files[name])
        (copy / "config.yaml").write_text(rmsprop if index % 10 == 0 else files["config.yaml"])
        status = {"status": "running", "pid": 2**22 + 1} if index % 50 == 0 else {}
        (copy / "run.json").write_text(json.dumps({**info, "id": run_id, "name": f"copy-{index}", **status}))


def time_command(args: list[str], runs_dir: Path, repeats: int) -> float:
    extra = ["--runs-dir", str(runs_dir)] if args[0] in ("runs", "compare", "show") else []
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(dlcli(*args, *extra), check=True, capture_output=True, env=ENVIRONMENT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        runs_dir = Path(temporary) / "runs"
        started = time.perf_counter()
        make_runs(runs_dir, options.runs)
        print(f"made {options.runs} run folders in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        subprocess.run(dlcli("runs", "--runs-dir", str(runs_dir)), check=True, capture_output=True, env=ENVIRONMENT)
        print(f"the first `dlcli runs` built the index in {time.perf_counter() - started:.1f} s")
        target = TARGET_S if options.runs <= 10_000 else 1.0
        print(f"{options.runs} runs; median of {options.repeats} whole-process runs; target {target} s")
        slow = 0
        for args in COMMANDS:
            median = time_command(args, runs_dir, options.repeats)
            verdict = "ok" if median < target else "SLOW"
            slow += verdict == "SLOW"
            print(f"  dlcli {' '.join(args):<62} {median:6.3f} s  {verdict}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
