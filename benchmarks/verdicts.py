"""Overfitting detectors compared on labelled learning curves: the project's corpus
(benchmarks/curves/, monitored by validation loss and again by validation accuracy) and the
book's own curves (../shared/book-curves/, labelled by what the book says of each, and again,
with its contributors' reruns, as that folder's SOURCES.md reads each).

Every detector reads each single-seed history (each fold of a k-fold run on its own) one
epoch at a time, as it would live, and raises at most one alarm. The corpus labels come
from the seed-averaged curves of each model (`label`). Printed per detector: false live
alarms on the runs of models that do not overfit; overfitting runs detected after their
true onset; the median and mean delay counted from the epoch at which the seed-averaged
curve stands 3 noise levels above its minimum (the overfit is plain); the share caught
within 5 epochs of that; the mean |onset error|; and which detectors dlcli beats on false
alarms and delay at once. Then the same detectors on made-up curves whose noise is
known: healthy plateaus (the share with an alarm) and steady climbs of a given slope (the share
caught within 5 epochs of the epoch the climb is plain).

    python benchmarks/verdicts.py [--markdown] [--made-up-runs N]

No TensorFlow: the curves are CSV files and the detectors are pure functions of the rows.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
CORPUS = REPOSITORY / "benchmarks" / "curves"
BOOK_CURVES = REPOSITORY.parent / "shared" / "book-curves"
# Models whose seeds disagree too much for a seed-averaged label (make_corpus.py's HELD_OUT)
HELD_OUT = CORPUS / "held-out"
sys.path.insert(0, str(REPOSITORY))

from dlcli.config import OverfittingConfig  # noqa: E402
from dlcli.curves.histories import models_of, read_curves  # noqa: E402
from dlcli.curves.verdicts import OverfittingWatch, noise_level  # noqa: E402

MONITOR = "val_loss"
# A model overfits when its seed-averaged validation loss ends this many noise levels above
# its minimum (and its training loss is lower than at the minimum). The noise level is a
# single run's (the median over the runs): the averaged curve is smoother than any run, and
# a rise that no single run can show apart from its noise is no clear overfit.
CLEARLY_ABOVE = 3.0
# The averaged curve's last epochs, whose mean is compared with its minimum.
LAST_EPOCHS = 3
# A model whose averaged rise lies within this factor of CLEARLY_ABOVE (either side) is too
# close to the line for its label to mean much: scored apart, as "borderline".
BORDERLINE_FACTOR = 1.5
# An alarm this many epochs after the overfit is plain or sooner is counted apart.
SOON = 5


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
    plain: int | None = None  # from this epoch on, the averaged curve stands CLEARLY_ABOVE noise levels above its minimum

    @property
    def borderline(self) -> bool:
        return CLEARLY_ABOVE / BORDERLINE_FACTOR < self.rise < CLEARLY_ABOVE * BORDERLINE_FACTOR


def load_corpus(corpus: Path = CORPUS) -> dict[str, list[History]]:
    """Every model's single-seed histories. Each fold of a k-fold model validates on other
    examples, so it is a model of its own ("boston-kfold fold 2"), its seeds averaged apart."""
    models: dict[str, list[History]] = {}
    folders = sorted(path for path in corpus.iterdir() if path.is_dir()) if corpus.is_dir() else []
    for folder in folders:
        for path in sorted(folder.glob("seed-*.csv"), key=lambda p: int(p.stem.split("-")[1])):
            for fold, rows in models_of(read_curves(path), str(path)):
                model = folder.name if fold is None else f"{folder.name} fold {fold}"
                models.setdefault(model, []).append(History(model, path.stem, rows))
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
    # plain: from this epoch on the averaged curve stays CLEARLY_ABOVE noise levels above its minimum
    # (a spike the seeds share and that falls back is no plain overfit)
    below = [epoch for epoch in range(onset + 1, length) if mean[epoch] - mean[onset] < CLEARLY_ABOVE * noise]
    plain = (max(below, default=onset) + 2) if rise > CLEARLY_ABOVE else None
    return Label(rise > CLEARLY_ABOVE and loss[-1] < loss[onset], onset + 1, rise, plain)


def monitored_by(corpus: dict[str, list[History]], monitor: str, minimize: bool) -> dict[str, list[History]]:
    """The corpus as another monitor sees it: its values under MONITOR's name, turned so that
    lower is better (every detector here minimizes); models that do not log it left out."""
    sign = 1.0 if minimize else -1.0
    return {
        model: [History(h.model, h.name, [{**row, MONITOR: sign * row[monitor]} for row in h.rows]) for h in histories]
        for model, histories in corpus.items() if all(monitor in h.rows[0] for h in histories)
    }


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


def dlcli_detector(settings: OverfittingConfig | None = None) -> Detector:
    """dlcli's OverfittingWatch, fed as training feeds it: the epoch of its ⚠ line and its onset then."""
    settings = settings or OverfittingConfig()

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
    delays: list[int]  # from the epoch the overfit is plain in the averaged curve to the alarm

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

    @property
    def median_delay(self) -> float:
        return statistics.median(self.delays) if self.delays else math.nan

    def caught_within(self, epochs: int) -> int:
        """Overfitting runs whose alarm came at most `epochs` after the overfit was plain."""
        return sum(delay <= epochs for delay in self.delays)


def score(detector: Detector, corpus: dict[str, list[History]], borderline: bool = False) -> Score:
    """A detector's alarms against the labels. An alarm on an overfitting run counts as a
    detection only after the true onset; one before it is premature and counts as missed.
    Borderline models are left out unless `borderline` (then scored as their label says)."""
    result = Score(0, 0, 0, 0, [], [])
    for histories in corpus.values():
        truth = label(histories)
        if truth.borderline and not borderline:
            continue
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
                result.delays.append(alarm - (truth.plain or truth.onset))
    return result


def beaten(ours: Score, theirs: Score) -> bool:
    """No more false alarms and no longer a median delay, one of them strictly less."""
    at_most = ours.false_alarm_rate <= theirs.false_alarm_rate and ours.median_delay <= theirs.median_delay
    return at_most and (ours.false_alarm_rate < theirs.false_alarm_rate or ours.median_delay < theirs.median_delay)


# What the book says of its curves (../shared/book-curves/SOURCES.md), in dlcli's epochs (from 1):
# (True, the epoch it names or the minimum it points at) for "overfits", (False, the epochs
# the claim covers) for "no longer overfitting". The curves it says nothing clear of are shown unscored.
BOOK_SAYS: dict[str, tuple[bool, int | None, str]] = {
    "3.5-classifying-movie-reviews__1": (True, 4, "they seem to peak at the fourth epoch"),
    "3.6-classifying-newswires__1": (True, 8, "starts overfitting after 8 epochs"),
    "4.4-overfitting-and-underfitting__1": (True, 4, "the reference one (after ... 4)"),
    "4.4-overfitting-and-underfitting__2": (True, 6, "the smaller network starts overfitting ... after 6 epochs"),
    "4.4-overfitting-and-underfitting__3": (True, 2, "starts overfitting almost right away, after just one epoch"),
    "5.2-using-convnets-with-small-datasets__1": (True, 6, "validation loss reaches its minimum after only five epochs"),
    "6.1-using-word-embeddings__2": (True, 3, "the model quickly starts overfitting"),
    "6.3-advanced-usage-of-recurrent-neural-networks__2": (True, 6, "diverging considerably after a few epochs"),
    "6.3-advanced-usage-of-recurrent-neural-networks__7": (True, 4, "it also seems to overfit faster"),
    "3.6-classifying-newswires__2": (False, None, "trained from scratch for the 8 epochs chosen"),
    "5.2-using-convnets-with-small-datasets__2": (False, None, "we are no longer overfitting"),
    "6.3-advanced-usage-of-recurrent-neural-networks__3": (False, 30, "no longer overfitting during the first 30 epochs"),
}
# An alarm agrees with the book's onset when it comes after it and at most this many epochs later.
BOOK_WITHIN = 4


def load_book(folder: Path = BOOK_CURVES) -> dict[str, list[dict[str, float]]]:
    """The book's histories, epochs from 1 (the CSVLogger files count from 0); {} when absent."""
    return {path.stem: read_curves(path) for path in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}


def agrees_with_book(says: tuple[bool, int | None, str], alarm: int | None) -> bool:
    overfits, epoch, _ = says
    if overfits:
        return alarm is not None and epoch < alarm <= epoch + BOOK_WITHIN
    return alarm is None or (epoch is not None and alarm > epoch)


# The book-curves folder's own reading of each curve (SOURCES.md, its last column), which labels
# the curves the book says nothing clear of and its contributors' reruns (pr_reruns/, the same
# models on other seeds) too: "overfits" from the epoch of the validation loss's minimum, "does
# not overfit", or neither (ambiguous, left out).
READING_ROW = re.compile(r"^\| `(?P<file>[^`]+)\.csv` \|.*CSV epoch (?P<minimum>\d+).*\| \*\*(?P<reading>[^*]+)\*\* \|\s*$")


def load_readings(folder: Path = BOOK_CURVES) -> dict[str, tuple[list[dict[str, float]], bool, int]]:
    """Each curve SOURCES.md reads as overfitting or not: (rows, overfits, the minimum's epoch from 1)."""
    sources = folder / "SOURCES.md"
    readings = {}
    for line in sources.read_text(encoding="utf-8").splitlines() if sources.is_file() else []:
        found = READING_ROW.match(line)
        path = folder / f"{found['file']}.csv" if found else None
        if path is None or not path.is_file():
            continue
        reading = found["reading"]
        if reading.startswith("overfits") or reading.startswith("does not overfit"):
            readings[found["file"]] = (read_curves(path), reading.startswith("overfits"), int(found["minimum"]) + 1)
    return readings


def _print_scores(title: str, corpus: dict[str, list[History]], bar: str, markdown: bool, borderline: bool) -> None:
    print(f"\n{title}\n")
    print(f"{bar} detector | false live alarms | detected after the onset | median delay | mean delay | "
          f"within {SOON} epochs | mean abs onset error | dlcli beats it {bar}".strip())
    if markdown:
        print("|---|---|---|---|---|---|---|---|")
    scores = {name: score(detector, corpus, borderline) for name, detector in DETECTORS.items()}
    ours = scores["dlcli"]
    for name, s in scores.items():
        verdict = "" if name == "dlcli" or not s.overfitting_runs else ("yes" if beaten(ours, s) else "no")
        timing = "– | – | – | –" if not s.overfitting_runs else (
            f"{s.median_delay:.1f} | {s.mean_delay:.1f} | {s.caught_within(SOON)}/{s.overfitting_runs} "
            f"({s.caught_within(SOON) / s.overfitting_runs:.0%}) | {s.mean_onset_error:.2f}"
        )
        print(
            f"{bar} {name} | {s.false_alarms}/{s.quiet_runs} ({s.false_alarm_rate:.0%}) | "
            f"{s.detected}/{s.overfitting_runs} ({s.detection_rate:.0%}) | {timing} | {verdict} {bar}".strip()
        )


# The null the detector's false-alarm control assumes, made up: a curve that converges within a
# few epochs and then stays flat, with white noise (Gaussian, or Student's t with 3 degrees of
# freedom for the odd bad epoch), while the training loss falls. Its hardest case, shown apart: a
# curve flat from its first epoch (a pretrained or already converged model), whose first looks
# come when the noise has been measured on a handful of epochs.
PLATEAU_LENGTHS = (20, 40, 100)
MADE_UP_RUNS = 500
NOISE_SCALE = 0.01
DESCENT = 0.5  # how far the made-up curves fall before they settle (50 noise scales)
# The overfits made up the same way: from TURN on, the curve climbs this many noise scales an epoch.
OVERFIT_SLOPES = (0.25, 0.5, 1.0, 2.0)
OVERFIT_LENGTH = 40
TURN = 10


def made_up_curve(length: int, slope: float = 0.0, descent: float = DESCENT) -> list[float]:
    """A curve without noise, converged within a few epochs (at once without `descent`), climbing
    `slope` noise scales an epoch from TURN on."""
    return [0.3 + descent * math.exp(-epoch / 3) + NOISE_SCALE * slope * max(0, epoch - TURN) for epoch in range(length)]


def made_up_runs(length: int, heavy_tails: bool, slope: float = 0.0,
                 descent: float = DESCENT) -> tuple[list[float], list[list[dict]]]:
    """The noise-free curve and MADE_UP_RUNS noisy histories of it, the training loss falling throughout."""
    generator = random.Random(0)
    curve = made_up_curve(length, slope, descent)
    runs = []
    for _ in range(MADE_UP_RUNS):
        noise = [
            generator.gauss(0, 1) / (math.sqrt(generator.gammavariate(1.5, 1 / 1.5)) if heavy_tails else 1.0)
            for _ in range(length)
        ]
        runs.append([
            {"epoch": epoch + 1, "loss": 0.8**epoch, MONITOR: curve[epoch] + NOISE_SCALE * noise[epoch]}
            for epoch in range(length)
        ])
    return curve, runs


def plateau_alarms(detector: Detector, length: int, heavy_tails: bool, descent: float = DESCENT) -> float:
    """The share of made-up healthy plateaus of `length` epochs on which `detector` raises an alarm."""
    _, runs = made_up_runs(length, heavy_tails, descent=descent)
    return sum(detector(rows)[0] is not None for rows in runs) / MADE_UP_RUNS


def overfits_caught(detector: Detector, slope: float, heavy_tails: bool, descent: float = DESCENT) -> tuple[float, float]:
    """On made-up overfits climbing `slope` noise scales an epoch: the share caught after the
    turn and at most SOON epochs after the noise-free curve stands CLEARLY_ABOVE noise scales
    above its minimum (the overfit is plain), and the median delay from that epoch."""
    curve, runs = made_up_runs(OVERFIT_LENGTH, heavy_tails, slope, descent)
    lowest = max(range(OVERFIT_LENGTH), key=lambda epoch: (-curve[epoch], epoch))  # the last, on a flat start: the turn
    plain = next(e for e in range(lowest, OVERFIT_LENGTH) if curve[e] - curve[lowest] >= CLEARLY_ABOVE * NOISE_SCALE) + 1
    delays = [alarm - plain for alarm, _ in map(detector, runs) if alarm is not None and alarm > lowest + 1]
    return sum(delay <= SOON for delay in delays) / MADE_UP_RUNS, statistics.median(delays) if delays else math.nan


def main() -> None:
    global MADE_UP_RUNS  # every made-up curve's count, from the command line
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--made-up-runs", type=int, default=MADE_UP_RUNS,
                        help=f"made-up curves of each shape (default {MADE_UP_RUNS}; 1000 halves the sampling error)")
    arguments = parser.parse_args()
    MADE_UP_RUNS = arguments.made_up_runs
    markdown = arguments.markdown
    corpus = load_corpus()
    bar = "|" if markdown else ""
    print(f"{bar} model | runs | overfits | true onset | plain at | rise (noise levels) {bar}".strip())
    if markdown:
        print("|---|---|---|---|---|---|")
    for model, histories in corpus.items():
        truth = label(histories)
        verdict = "borderline" if truth.borderline else ("yes" if truth.overfits else "no")
        print(f"{bar} {model} | {len(histories)} | {verdict} | {truth.onset} | {truth.plain or ''} | "
              f"{truth.rise:.1f} {bar}".strip())
    _print_scores("The corpus, val_loss, borderline models left out:", corpus, bar, markdown, borderline=False)
    _print_scores("The corpus, val_loss, borderline models scored as labelled:", corpus, bar, markdown, borderline=True)
    accuracy = monitored_by(corpus, "val_accuracy", minimize=False)
    _print_scores("The corpus monitored by val_accuracy (its own labels):", accuracy, bar, markdown, borderline=False)

    for descent, kind in ((DESCENT, "plateaus"), (0.0, "plateaus flat from their first epoch")):
        print(f"\nMade-up healthy {kind} ({MADE_UP_RUNS} runs each): the share with an alarm\n")
        shapes = [(length, heavy) for heavy in (False, True) for length in PLATEAU_LENGTHS]
        columns = " | ".join(f"{length} epochs{', t3 noise' if heavy else ''}" for length, heavy in shapes)
        print(f"{bar} detector | {columns} {bar}".strip())
        if markdown:
            print("|---|" + "---|" * len(shapes))
        for name in ("dlcli", "Keras EarlyStopping, patience 5", "Prechelt UP3"):
            rates = [plateau_alarms(DETECTORS[name], length, heavy, descent) for length, heavy in shapes]
            cells = " | ".join(f"{rate:.1%}" for rate in rates)
            print(f"{bar} {name} | {cells} {bar}".strip())

    for descent, kind in ((DESCENT, "overfits"), (0.0, "overfits flat from their first epoch")):
        print(f"\nMade-up {kind} ({MADE_UP_RUNS} runs each, {OVERFIT_LENGTH} epochs, climbing from epoch {TURN + 1} "
              f"by the given noise scales an epoch): the share caught within {SOON} epochs of the epoch the overfit "
              "is plain, and the median delay from it\n")
        shapes = [(slope, heavy) for heavy in (False, True) for slope in OVERFIT_SLOPES]
        columns = " | ".join(f"{slope:g}/epoch{', t3 noise' if heavy else ''}" for slope, heavy in shapes)
        print(f"{bar} detector | {columns} {bar}".strip())
        if markdown:
            print("|---|" + "---|" * len(shapes))
        for name in ("dlcli", "Keras EarlyStopping, patience 2", "Keras EarlyStopping, patience 5", "Prechelt UP3"):
            results = [overfits_caught(DETECTORS[name], slope, heavy, descent) for slope, heavy in shapes]
            cells = " | ".join(f"{share:.0%} ({'–' if math.isnan(delay) else f'{delay:+g}'})" for share, delay in results)
            print(f"{bar} {name} | {cells} {bar}".strip())

    book = load_book()
    if book:
        print(f"\nThe book's curves: the epoch of each detector's alarm (✓ agrees with the book: an alarm "
              f"after the onset it names and at most {BOOK_WITHIN} epochs later, none on a healthy curve)\n")
        names = list(DETECTORS)
        print(f"{bar} curve | the book says | {' | '.join(names)} {bar}".strip())
        if markdown:
            print("|---|---|" + "---|" * len(names))
        agreed = dict.fromkeys(names, 0)
        for stem, rows in book.items():
            says = BOOK_SAYS.get(stem)
            cells = []
            for name in names:
                alarm = DETECTORS[name](rows)[0]
                mark = "" if says is None else (" ✓" if agrees_with_book(says, alarm) else " ✗")
                agreed[name] += bool(says) and mark == " ✓"
                cells.append(f"{alarm or '–'}{mark}")
            said = "(nothing clear)" if says is None else (
                f"overfits from {says[1]}" if says[0] else "healthy" + (f" to {says[1]}" if says[1] else ""))
            print(f"{bar} {stem} | {said} | {' | '.join(cells)} {bar}".strip())
        print(f"{bar} agrees with the book | {len(BOOK_SAYS)} curves | "
              f"{' | '.join(str(agreed[name]) for name in names)} {bar}".strip())

    readings = load_readings()
    if readings:
        overfitting = sum(overfits for _, overfits, _ in readings.values())
        # each curve's plain epoch as the corpus's labels place it, from its own noise (a single run)
        plain = {stem: label([History(stem, stem, rows)]).plain for stem, (rows, overfits, _) in readings.items() if overfits}
        print(f"\nThe book's curves and its contributors' reruns as SOURCES.md reads them ({overfitting} overfit, "
              f"{len(readings) - overfitting} do not, the ambiguous left out): false alarms, alarms after the "
              f"validation loss's minimum, within {BOOK_WITHIN} epochs of it and the median delay from it; then, "
              f"on the {sum(epoch is not None for epoch in plain.values())} whose own curve stands {CLEARLY_ABOVE:g} "
              f"of its noise levels above the minimum for good (plain, as in the corpus's labels), the median delay "
              f"from that epoch and the share caught within {SOON} epochs of it\n")
        print(f"{bar} detector | false alarms | caught after the minimum | within {BOOK_WITHIN} | median delay | "
              f"median delay from plain | within {SOON} of plain {bar}".strip())
        if markdown:
            print("|---|---|---|---|---|---|---|")
        for name, detector in DETECTORS.items():
            alarms = {stem: (detector(rows)[0], overfits, minimum) for stem, (rows, overfits, minimum) in readings.items()}
            false = sum(alarm is not None for alarm, overfits, _ in alarms.values() if not overfits)
            caught = {stem: alarm for stem, (alarm, overfits, minimum) in alarms.items()
                      if overfits and alarm is not None and alarm > minimum}
            delays = [alarm - readings[stem][2] for stem, alarm in caught.items()]
            from_plain = [alarm - plain[stem] for stem, alarm in caught.items() if plain[stem] is not None]
            median, median_plain = (f"{statistics.median(values):g}" if values else "–" for values in (delays, from_plain))
            print(f"{bar} {name} | {false}/{len(readings) - overfitting} | {len(delays)}/{overfitting} | "
                  f"{sum(delay <= BOOK_WITHIN for delay in delays)}/{overfitting} | {median} | {median_plain} | "
                  f"{sum(delay <= SOON for delay in from_plain)}/{sum(epoch is not None for epoch in plain.values())} "
                  f"{bar}".strip())

    held_out = load_corpus(HELD_OUT)
    if held_out:
        histories = [history for group in held_out.values() for history in group]
        print(f"\nheld out, not scored ({', '.join(sorted({h.model.split()[0] for h in histories}))}): runs with an alarm")
        for name, detector in DETECTORS.items():
            alarms = sum(detector(history.rows)[0] is not None for history in histories)
            print(f"{bar} {name} | {alarms}/{len(histories)} {bar}".strip())


if __name__ == "__main__":
    main()
