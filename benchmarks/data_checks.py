"""What the data checks (issue 32) cost: `dlcli check` on a folder of photos with the checks
computed (an empty checks cache) against the same command with the checks read back from the
cache (a second run of the same data), alternating; then the checks alone, in-process, on the
folder and on one with `--scale` times the photos, to see how they grow.

The photos are those of benchmarks/image_folder.py (JPEGs of 300-480 px in the book's
cats-vs-dogs layout), made once and kept under --photos.

    python benchmarks/data_checks.py [--photos DIR] [--repeats 3] [--scale 4]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from image_folder import make_photos  # noqa: E402 - the benchmarks folder is not a package

TRAIN, VALIDATION, TEST = 2000, 1000, 2000  # 5,000 photos, as benchmarks/image_folder.py makes them


def timed_check(photos: Path, cache: Path, runs: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dlcli", "check", str(REPOSITORY / "configs" / "cats_dogs_scratch.yaml"),
         "--set", f"dataset.path={photos}", "--runs-dir", str(runs)],
        check=True, capture_output=True, text=True,
        env={**os.environ, "DLCLI_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    return time.perf_counter() - started


def checks_alone(photos: Path) -> tuple[float, int, int]:
    """(seconds, photos, findings) of the checks of the folder's splits, nothing cached."""
    from dlcli.config import load_config
    from dlcli.data import load_raw
    from dlcli.data.checks import find_issues
    from dlcli.data.prepare import prepare

    config = load_config(REPOSITORY / "configs" / "cats_dogs_scratch.yaml", [f"dataset.path={photos}"])
    splits = prepare(load_raw(config), config)
    with tempfile.TemporaryDirectory() as empty:  # no file's hash kept from an earlier run
        os.environ["DLCLI_CACHE_DIR"] = empty
        started = time.perf_counter()
        findings = find_issues(splits, config)
        seconds = time.perf_counter() - started
    return seconds, len(splits.train) + len(splits.validation) + len(splits.test), len(findings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=Path(tempfile.gettempdir()) / "dlcli-photos")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=4)
    options = parser.parse_args()
    small = make_photos(options.photos / "5k", TRAIN, VALIDATION, TEST)
    scale = options.scale
    large = make_photos(options.photos / f"{5 * scale}k", TRAIN * scale, VALIDATION * scale, TEST * scale, seed=1)

    times: dict[str, list[float]] = {"checks computed": [], "checks cached": []}
    with tempfile.TemporaryDirectory() as temporary:
        for repeat in range(options.repeats):
            cache, runs = Path(temporary) / f"cache-{repeat}", Path(temporary) / "runs"
            times["checks computed"].append(timed_check(small, cache, runs))
            times["checks cached"].append(timed_check(small, cache, runs))
            shutil.rmtree(cache)
            print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in times.items()),
                  flush=True)
    computed, cached = (statistics.median(values) for values in times.values())
    print(f"\ndlcli check on 5,000 photos, medians of {options.repeats}: checks computed {computed:.2f} s, "
          f"read from the cache {cached:.2f} s: the checks add {computed / cached - 1:.0%}")

    alone = {name: checks_alone(folder) for name, folder in (("small", small), ("large", large))}
    for seconds, count, findings in alone.values():
        print(f"checks alone, {count:,} photos: {seconds:.2f} s ({seconds / count * 1e3:.3f} ms a photo), {findings} findings")
    (small_seconds, small_count, _), (large_seconds, large_count, _) = alone["small"], alone["large"]
    n_log_n = large_count * math.log(large_count) / (small_count * math.log(small_count))
    print(f"{large_count / small_count:.0f}x the photos: {large_seconds / small_seconds:.2f}x the time "
          f"(n log n would be {n_log_n:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
