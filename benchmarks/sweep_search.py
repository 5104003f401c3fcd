"""TPE against random search, and median pruning, with the same budget of trials.

The space has a real optimum: a dense net with dropout on mnist_5k, searching
the learning rate (log-uniform 1e-5..1e-1), the hidden units (int 8..512) and the dropout
rate (uniform 0..0.7). For each of `--seeds` search seeds, three sweeps of `--trials`
trials: random, TPE, and TPE with `prune: median`. Prints each sweep's best validation
loss and wall time, then the means.

Trials long enough for their epochs to matter (a pruner saves epochs, not a trial's fixed
costs: building, tracing, saving): 15 epochs of batches of 32 by default.

    python benchmarks/sweep_search.py [--trials 20] [--seeds 3] [--epochs 15] [--batch-size 32]
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

CONFIG = """\
name: search
seed: 0
dataset: {{name: mnist_5k, validation_split: 0.2, normalize: true}}
model:
  layers:
    - Flatten
    - Dense: {{units: 128, activation: relu}}
    - Dropout: {{rate: 0.2}}
    - Dense: {{units: 10, activation: softmax}}
optimizer: {{name: adam, learning_rate: 0.001}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
training: {{epochs: {epochs}, batch_size: {batch_size}, tensorboard: false}}
sweep:
  trials: 20
  params:
    optimizer.learning_rate: {{log_uniform: [1.0e-5, 1.0e-1]}}
    model.layers.1.Dense.units: {{int: [8, 512]}}
    model.layers.2.Dropout.rate: {{uniform: [0.0, 0.7]}}
"""

SEARCHES = {"random": ["--method", "random"], "tpe": ["--method", "tpe"],
            "tpe + median pruning": ["--method", "tpe", "--prune", "median"]}


def sweep(config: Path, runs: Path, trials: int, seed: int, options: list[str]) -> tuple[float, float, int]:
    """(best val_loss of any trial, wall seconds, trials pruned)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dlcli", "sweep", str(config), "--trials", str(trials), "--seed", str(seed),
         *options, "--runs-dir", str(runs)],
        check=True, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    seconds = time.perf_counter() - started
    summaries = [json.loads(path.read_text()) for path in runs.glob("*/summary.json")]
    best = min(summary["best"]["val_loss"] for summary in summaries)
    return best, seconds, sum(bool(summary.get("pruned")) for summary in summaries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--searches", default=",".join(SEARCHES), help="which of: " + ", ".join(SEARCHES))
    options = parser.parse_args()
    chosen = {name: SEARCHES[name] for name in options.searches.split(",")}
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory() as temporary:
        config = Path(temporary) / "search.yaml"
        config.write_text(CONFIG.format(epochs=options.epochs, batch_size=options.batch_size))
        for seed in range(options.seeds):
            for name, arguments in chosen.items():
                runs = Path(temporary) / f"runs-{seed}-{name.replace(' ', '')}"
                results[name].append(sweep(config, runs, options.trials, seed, arguments))
                best, seconds, pruned = results[name][-1]
                print(f"seed {seed}  {name:22} best val_loss {best:.4f}  {seconds:6.1f} s  {pruned} pruned", flush=True)
    print(f"\n{options.trials} trials a sweep, {options.epochs} epochs of batches of {options.batch_size}, "
          f"means over {options.seeds} seeds:")
    for name, rows in results.items():
        print(f"  {name:22} best val_loss {statistics.mean(r[0] for r in rows):.4f}  "
              f"time {statistics.mean(r[1] for r in rows):6.1f} s  pruned {statistics.mean(r[2] for r in rows):.1f}")
    if "tpe" in results and "tpe + median pruning" in results:
        tpe, pruned = results["tpe"], results["tpe + median pruning"]
        saved = 1 - statistics.mean(r[1] for r in pruned) / statistics.mean(r[1] for r in tpe)
        print(f"  median pruning saves {saved:.0%} of TPE's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
