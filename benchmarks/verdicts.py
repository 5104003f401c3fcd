"""Overfitting detectors compared on the labelled corpus of learning curves (benchmarks/curves/).

Every detector reads each single-seed history (each fold of a k-fold run on its own) one
epoch at a time, as it would live, and raises at most one alarm. The labels come from the
seed-averaged curves of each model (`label`). Printed per detector: false live alarms on
the runs of models that do not overfit, the share of overfitting runs detected after their
onset, the mean |onset error| and the mean delay from the true onset to the alarm.

    python benchmarks/verdicts.py [--markdown]

No TensorFlow: the corpus is CSV files and the detectors are pure functions of the rows.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
CORPUS = REPOSITORY / "benchmarks" / "curves"
# Models whose seeds disagree too much for a seed-averaged label (make_corpus.py's HELD_OUT)
HELD_OUT = CORPUS / "held-out"
sys.path.insert(0, str(REPOSITORY))

from dlcli.config import OverfittingConfig  # noqa: E402
from dlcli.verdicts import OverfittingWatch, noise_level  # noqa: E402

MONITOR = "val_loss"
# A model overfits when its seed-averaged validation loss ends this many noise levels above
# its minimum (and its training loss is lower than at the minimum). The noise level is a
# single run's (the median over the runs): the averaged curve is smoother than any run, and
# a rise that no single run can show apart from its noise is no clear overfit.
CLEARLY_ABOVE = 3.0
# The averaged curve's last epochs, whose mean is compared with its minimum.
LAST_EPOCHS = 3
# An alarm this many epochs after the true onset or sooner is counted apart: a run may stop earlier.
SOON = 10


@dataclass
class History:
    model: str
    name: str  # seed-3
    rows: list[dict[str, float]]


@dataclass
class Label:
    overfits: bool
    onset: int  # the epoch of the seed-averaged validation loss's minimum
    rise: float  # its last epochs' mean above that minimum, in noise levels of a single run


def load_corpus(corpus: Path = CORPUS) -> dict[str, list[History]]:
    """Every model's single-seed histories. Each fold of a k-fold model validates on other
    examples, so it is a model of its own ("boston-kfold fold 2"), its seeds averaged apart."""
    models: dict[str, list[History]] = {}
    folders = sorted(path for path in corpus.iterdir() if path.is_dir()) if corpus.is_dir() else []
    for folder in folders:
        for path in sorted(folder.glob("seed-*.csv"), key=lambda p: int(p.stem.split("-")[1])):
            with path.open(newline="") as file:
                rows = [{key: float(value) for key, value in row.items() if value != ""} for row in csv.DictReader(file)]
            folds = sorted({int(row["fold"]) for row in rows if "fold" in row})
            for fold in folds:
                model = f"{folder.name} fold {fold}"
                models.setdefault(model, []).append(
                    History(model, path.stem, [row for row in rows if row["fold"] == fold])
                )
            if not folds:
                models.setdefault(folder.name, []).append(History(folder.name, path.stem, rows))
    return models


def label(histories: list[History]) -> Label:
    """The ground truth for one model, from its validation and training losses averaged over the runs."""
    length = min(len(history.rows) for history in histories)
    mean = [statistics.fmean(h.rows[epoch][MONITOR] for h in histories) for epoch in range(length)]
    loss = [statistics.fmean(h.rows[epoch]["loss"] for h in histories) for epoch in range(length)]
    onset = min(range(length), key=mean.__getitem__)
    after = mean[onset + 1:][-LAST_EPOCHS:]
    noise = statistics.median(noise_level([row[MONITOR] for row in h.rows]) for h in histories)
    rise = (statistics.fmean(after) - mean[onset]) / noise if after else 0.0
    return Label(rise > CLEARLY_ABOVE and loss[-1] < loss[onset], onset + 1, rise)


# A detector reads rows one at a time and returns (the epoch of its alarm, the onset it names) or (None, None).
Detector = Callable[[list[dict[str, float]]], tuple[int | None, int | None]]


def _losses(rows):
    return [row[MONITOR] for row in rows], [row["loss"] for row in rows]


def _best_epoch(values, upto):
    return min(range(upto), key=values.__getitem__) + 1


def keras_early_stopping(patience: int, training_loss_falls: bool = False) -> Detector:
    """keras.callbacks.EarlyStopping(monitor='val_loss', patience, min_delta=0): no new best for
    `patience` epochs; with `training_loss_falls`, only while the training loss is lower than at
    the best epoch (dlcli's rule before this benchmark, with patience 2)."""

    def detect(rows):
        values, losses = _losses(rows)
        best, best_loss, wait = math.inf, math.inf, 0
        for epoch, (value, loss) in enumerate(zip(values, losses), start=1):
            if value < best:
                best, best_loss, wait = value, loss, 0
            else:
                wait += 1
                if wait >= patience and (not training_loss_falls or loss < best_loss):
                    return epoch, _best_epoch(values, epoch)
        return None, None

    return detect


def generalization_loss(alpha: float) -> Detector:
    """Prechelt's GL_α: stop once the validation loss is more than α% above its best so far."""

    def detect(rows):
        values, _ = _losses(rows)
        for epoch in range(1, len(values) + 1):
            best = min(values[:epoch])
            if 100 * (values[epoch - 1] / best - 1) > alpha:
                return epoch, _best_epoch(values, epoch)
        return None, None

    return detect


STRIP = 5  # Prechelt's training strip length k


def _progress(losses, epoch):
    strip = losses[epoch - STRIP:epoch]
    return 1000 * (sum(strip) / (STRIP * min(strip)) - 1)


def progress_quotient(alpha: float) -> Detector:
    """Prechelt's PQ_α: GL divided by the training progress of the last strip exceeds α (at strip ends)."""

    def detect(rows):
        values, losses = _losses(rows)
        for epoch in range(STRIP, len(values) + 1, STRIP):
            best = min(values[:epoch])
            gl = 100 * (values[epoch - 1] / best - 1)
            progress = _progress(losses, epoch)
            if progress > 0 and gl / progress > alpha:
                return epoch, _best_epoch(values, epoch)
        return None, None

    return detect


def up(strips: int) -> Detector:
    """Prechelt's UP_s: the validation loss rose at the end of `strips` successive strips."""

    def detect(rows):
        values, _ = _losses(rows)
        rising = 0
        for epoch in range(2 * STRIP, len(values) + 1, STRIP):
            rising = rising + 1 if values[epoch - 1] > values[epoch - 1 - STRIP] else 0
            if rising >= strips:
                return epoch, _best_epoch(values, epoch)
        return None, None

    return detect


def dlcli_detector(settings: OverfittingConfig = OverfittingConfig()) -> Detector:
    """dlcli's OverfittingWatch, fed as training feeds it: the epoch of its ⚠ line and its onset then."""

    def detect(rows):
        watch = OverfittingWatch(settings, minimize=True)
        for row in rows:
            if watch.observe(row):
                return row["epoch"], watch.onset_epoch
        return None, None

    return detect


DETECTORS: dict[str, Detector] = {
    "dlcli": dlcli_detector(),
    "dlcli before: patience 2, training loss falling": keras_early_stopping(2, training_loss_falls=True),
    "Keras EarlyStopping, patience 2": keras_early_stopping(2),
    "Keras EarlyStopping, patience 5": keras_early_stopping(5),
    "Prechelt GL2": generalization_loss(2),
    "Prechelt GL5": generalization_loss(5),
    "Prechelt PQ0.5": progress_quotient(0.5),
    "Prechelt PQ2": progress_quotient(2),
    "Prechelt UP2": up(2),
    "Prechelt UP3": up(3),
}


@dataclass
class Score:
    false_alarms: int
    quiet_runs: int  # runs of models that do not overfit
    detected: int
    overfitting_runs: int
    onset_errors: list[int]
    delays: list[int]

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / max(self.quiet_runs, 1)

    @property
    def detection_rate(self) -> float:
        return self.detected / max(self.overfitting_runs, 1)

    @property
    def mean_onset_error(self) -> float:
        return statistics.fmean(self.onset_errors) if self.onset_errors else math.nan

    @property
    def mean_delay(self) -> float:
        return statistics.fmean(self.delays) if self.delays else math.nan

    def caught_within(self, epochs: int) -> int:
        """Overfitting runs whose alarm came at most `epochs` after the true onset."""
        return sum(delay <= epochs for delay in self.delays)


def score(detector: Detector, corpus: dict[str, list[History]]) -> Score:
    """A detector's alarms against the labels. An alarm on an overfitting run counts as a
    detection only after the true onset; one before it is premature and counts as missed."""
    result = Score(0, 0, 0, 0, [], [])
    for histories in corpus.values():
        truth = label(histories)
        for history in histories:
            alarm, onset = detector(history.rows)
            if not truth.overfits:
                result.quiet_runs += 1
                result.false_alarms += alarm is not None
                continue
            result.overfitting_runs += 1
            if alarm is not None and alarm > truth.onset:
                result.detected += 1
                result.onset_errors.append(abs(onset - truth.onset))
                result.delays.append(alarm - truth.onset)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    markdown = parser.parse_args().markdown
    corpus = load_corpus()
    bar = "|" if markdown else ""
    print(f"{bar} model | runs | overfits | true onset | rise (noise levels) {bar}".strip())
    if markdown:
        print("|---|---|---|---|---|")
    for model, histories in corpus.items():
        truth = label(histories)
        print(f"{bar} {model} | {len(histories)} | {'yes' if truth.overfits else 'no'} | "
              f"{truth.onset} | {truth.rise:.1f} {bar}".strip())
    print()
    print(f"{bar} detector | false live alarms | detected | within {SOON} epochs of the onset | "
          f"mean abs onset error | mean delay {bar}".strip())
    if markdown:
        print("|---|---|---|---|---|---|")
    for name, detector in DETECTORS.items():
        s = score(detector, corpus)
        print(
            f"{bar} {name} | {s.false_alarms}/{s.quiet_runs} ({s.false_alarm_rate:.0%}) | "
            f"{s.detected}/{s.overfitting_runs} ({s.detection_rate:.0%}) | {s.caught_within(SOON)}/{s.overfitting_runs} | "
            f"{s.mean_onset_error:.2f} | {s.mean_delay:.1f} {bar}".strip()
        )
    held_out = load_corpus(HELD_OUT)
    if held_out:
        histories = [history for group in held_out.values() for history in group]
        print(f"\nheld out, not scored ({', '.join(sorted({h.model.split()[0] for h in histories}))}): runs with an alarm")
        for name, detector in DETECTORS.items():
            alarms = sum(detector(history.rows)[0] is not None for history in histories)
            print(f"{bar} {name} | {alarms}/{len(histories)} {bar}".strip())


if __name__ == "__main__":
    main()
