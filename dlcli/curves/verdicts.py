"""Reading the curves: overfitting, underfitting and plateaus, with advice fitted to the config.

Pure functions of history rows (one dict per epoch), so the same verdict comes from a
live run, a resumed one, or a history.csv read back later.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dlcli.choices import Direction
from dlcli.columns import EPOCH_COLUMN, metric_name
from dlcli.data.catalog import DATASETS, IMAGE_OPTIONS
from dlcli.errors import counted

if TYPE_CHECKING:  # the reading commands judge curves without loading the config schema
    from dlcli.config import ExperimentConfig, OverfittingConfig

# Advice on a model "large for its data": more parameters than this many per training example.
PARAMETERS_PER_EXAMPLE = 100
# Epochs past the onset after which stopping earlier is worth suggesting.
EPOCHS_PAST_ONSET = 3
# A loss that moved less than this fraction over the run did not learn; a training loss that rose
# by less than this fraction of its descent did not worsen.
FLAT_LOSS_FRACTION = 0.01


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def minimizes(directions: dict[str, str], key: str) -> bool | None:
    """Whether a lower `key` is better, by the directions a run recorded; None when unknown."""
    direction = directions.get(metric_name(key))
    return None if direction is None else direction == Direction.min


def best_row(rows: list[dict[str, float]], monitor: str, minimize: bool) -> dict[str, float] | None:
    """The first row with the best finite `monitor` value (the epoch model.keras was saved at)."""
    candidates = [row for row in rows if _finite(row.get(monitor))]
    if not candidates:
        return None
    pick = min if minimize else max
    return pick(candidates, key=lambda row: row[monitor])


# One epoch's noise is never taken as less than this fraction of the curve's typical size:
# a perfectly smooth curve would otherwise make a rounding-sized rise significant.
NOISE_FLOOR_FRACTION = 1e-3
# Differences this small a fraction of the values they are made of are floating-point rounding, not noise.
ROUNDING = 1e-9
# The level test asks the recent epochs to stand this many noise levels above the best epoch's level.
# For Gaussian noise a single look at 3 noise levels is wrong about once in 700.
STRONG_RISE = 3.0
# The level test measures the noise over the whole run, the conservative way: a jump alone must
# stand out of the run's noisiest stretch. It looks again at every epoch, and the largest of k
# looks at pure noise grows like sqrt(2 ln k): its bar is STRONG_RISE * sqrt(ln k / ln LEVEL_LOOKS),
# STRONG_RISE at the LEVEL_LOOKS-th look, lower before (2.4 at the 7th) and higher after, so that
# a long plateau is no likelier to warn than a short one. The looks are counted over the run, not
# since the best epoch: on a plateau each new best (a lucky dip) would otherwise start the count
# again, and later noise outruns the dip sooner or later.
# The bar is right for a known noise, but a noise estimated from a handful of epochs is often far
# too low (its 10th percentile is 0.29 of the truth from 7 epochs of white noise). On a curve that
# descended first, the descent's bends inflate the estimate and keep the test safe; on a curve flat
# from its first epoch nothing does, and a rise of half a noise level can read as ten. So when the
# rise exceeds all the run has gained (the first epoch's value above the best epoch's level), a
# curve that never learned or gave it all back, the level alone is not believed: the epochs since
# the best must also rise by rank (TREND_P), which asks nothing of the noise's size.
LEVEL_LOOKS = 20
# The trend test measures the noise where it matters: over the settled stretch, from the first
# epoch that came within SETTLED_FRACTION of the way from the first epoch's value to the best (at
# least LOCAL_NOISE_EPOCHS epochs), so that a steep, jumpy start does not inflate it. It asks two
# things. Order: the epochs since the best rise by rank (Kendall's tau, one-sided) with a p-value
# below TREND_P, over at least TREND_EPOCHS epochs; under no trend the epochs after the best are
# exchangeable, so each ordering of them is as likely as any other and the p-value is exact
# whatever the noise's shape (scipy's exact test for up to 33 epochs without ties; its normal
# approximation beyond, and for a metric that repeats values). When they do not, the epochs after
# the latest low among them are tested the same way (as exchangeable, given where the low fell): a
# bad epoch or two just past the best otherwise spoils the ranks of a climb that starts after
# them. The two looks together pass by chance at most 2 * TREND_P of the time. Size: the robust
# (Theil-Sen) line through the epochs since the best rises, from the best epoch to the last, by
# TREND_RISE noise levels of the settled stretch. A line uses every epoch of the climb where the
# median of the last few leaves most out; drawn through as few as 5 noisy epochs it is itself
# noisy, hence a bar above STRONG_RISE. The size is what holds most of the false alarms: on 1,000
# made-up healthy plateaus each of 20, 40 and 100 epochs (`benchmarks/verdicts.py --made-up-runs
# 1000`), a TREND_P of 0.03 warns on at most 0.5 points more of them than 0.01, 0.05 on up to 1.4
# more (docs/verdicts.md). A steady climb of small steps is strong evidence as a trend long before
# it is large against the whole run's noise.
TREND_P = 0.03
TREND_EPOCHS = 5  # the fewest whose exact p-value can be below TREND_P: 1/5! when all rise (4 give 1/24 at best)
SETTLED_FRACTION = 0.25
LOCAL_NOISE_EPOCHS = 8
TREND_RISE = 4.0
# The quiet hint in the progress line.
WEAK_RISE = 1.5
# The rise is the median of this many last epochs (one bad epoch is no trend) above the best
# epoch's level.
AVERAGED_EPOCHS = 3
# Fewer epochs than this give no trustworthy measure of the noise, and so no warning from the
# level or the trend test.
MIN_EPOCHS = 7
# The third test measures no noise, and so waits for no MIN_EPOCHS: a loss that has given back all
# it gained. Prechelt's generalization loss GL ("Early Stopping - But When?", 1998): the validation
# loss GAVE_BACK_RATIO times its best or more (his GL50) in every epoch since the best, at least
# AVERAGED_EPOCHS of them, each also worse than every epoch before the best, the first included.
# For a loss (a positive value that is minimized) a ratio is a size without a noise estimate, which
# a handful of epochs cannot give. The epochs before the best show how far the curve wanders by
# itself, so a run whose loss jumped as high while it was still learning (a learning rate too high)
# is not warned by it; every epoch since the best, not the last few, keeps it rare on noisy
# plateaus (measured in docs/verdicts.md). The onset it names is the best epoch: a noise
# measured on so few epochs places no band around it.
GAVE_BACK_RATIO = 1.5


def fewest_epochs(minimize: bool) -> int:
    """The fewest epochs at which a test can warn: for a loss, the third test's (an epoch before the
    best, the best and AVERAGED_EPOCHS after it); for a metric to maximize, MIN_EPOCHS."""
    return 2 + AVERAGED_EPOCHS if minimize else MIN_EPOCHS


# The onset: the first epoch already within this many noise levels of the best. On a broad
# bottom the best epoch itself is where the noise happened to dip, often epochs later.
ONSET_BAND = 0.5


def noise_level(values: list[float]) -> float:
    """The epoch-to-epoch noise of a curve, as one epoch's standard deviation.

    A smooth trend has small second differences, so their robust spread (the median absolute
    deviation, scaled: a second difference of white noise has 6 times its variance) measures
    the noise rather than the trend, and the median ignores the few large ones of a steep
    start or a bad epoch. A metric that moves in steps (an accuracy over N examples, 1/N at a
    time) repeats itself: its noise is then at least its smallest step, so that one example
    more or less is never a trend. `values` are finite (evidence() leaves the others out).
    """
    import numpy as np  # only training and `dlcli verdict` judge curves; numpy as the history grows long

    # values near a float's limit (1e308) make differences that overflow: that noise is infinite, said by the
    # verdict, not by NumPy's warnings on stderr
    with np.errstate(over="ignore", invalid="ignore"):
        curve = np.asarray(values, dtype=float)
        floor = max(NOISE_FLOOR_FRACTION * float(np.median(np.abs(curve))), 1e-12) if len(curve) else 1e-12
        second = curve[2:] - 2 * curve[1:-1] + curve[:-2]
        if len(second) < 2:
            return floor
        # a deviation within rounding of none is none: 0.6, 0.4, 0.2 give second differences 1e-16 apart.
        # Rounding of the three values each second difference is made of, not of the curve's largest: a
        # first epoch of 3e7 would call every later deviation rounding
        roundings = ROUNDING * (np.abs(curve[:-2]) + 2 * np.abs(curve[1:-1]) + np.abs(curve[2:]))
        deviations = np.abs(second - np.median(second))
        deviations[deviations <= roundings] = 0.0
        # more than half the epochs on the trend exactly: the mean deviation still sees the rest
        spread = float(np.median(deviations)) * 1.4826 or statistics.fmean(deviations.tolist()) * 1.2533
        noise = spread / math.sqrt(6)
        steps = np.abs(np.diff(curve))
        moved = steps[steps != 0]
        if len(moved) < len(steps):
            noise = max(noise, float(moved.min()) if len(moved) else 0.0)
    return max(noise, floor) if math.isfinite(noise) else math.inf


def rising_p_value(values: list[float]) -> float:
    """One-sided p-value of Kendall's tau between epoch and value: small when `values` rise."""
    from scipy.stats import kendalltau  # only training and `dlcli verdict` judge curves

    if len(values) < 2 or len(set(values)) < 2:
        return 1.0
    result = kendalltau(range(len(values)), values, alternative="greater")
    return float(result.pvalue) if math.isfinite(result.pvalue) else 1.0


def fitted_rise(values: list[float]) -> float:
    """How far the robust (Theil-Sen) line through `values`, the epochs after the best, rises from
    the best epoch (one epoch before the first) to the last; 0 when it falls."""
    from scipy.stats import theilslopes  # only training and `dlcli verdict` judge curves

    if len(values) < 2:
        return 0.0
    slope = float(theilslopes(values, range(1, len(values) + 1))[0])
    return max(slope, 0.0) * len(values) if math.isfinite(slope) else 0.0


def rising_stretch(since_best: list[float]) -> tuple[float, int]:
    """The rank test's p-value of a rise in the epochs since the best, and how many epochs it
    read: all of them, or, when they do not rise significantly and those after the latest low
    among them do, those. The second p-value is exact given where the low fell, not adjusted
    for being a second look (see TREND_P)."""
    if len(since_best) < TREND_EPOCHS:
        return 1.0, 0
    tested = (rising_p_value(since_best), len(since_best))
    lowest = min(since_best)
    latest_low = max(index for index, value in enumerate(since_best) if value == lowest)
    after_low = since_best[latest_low + 1:]
    if tested[0] < TREND_P or len(after_low) < TREND_EPOCHS:
        return tested
    again = (rising_p_value(after_low), len(after_low))
    return again if again[0] < TREND_P else tested


@dataclass(frozen=True)
class Evidence:
    """How far the monitored metric has moved away from its best, against its noise."""

    epoch: int  # the last epoch read
    epochs: int  # how many epochs were read
    onset_epoch: int  # the first epoch already as good as the best, within the noise
    best_epoch: int
    epochs_since_best: int
    best: float
    now: float
    rise: float  # the last epochs' median beyond the best epoch's level, in the metric's units (positive: worse)
    gained: float  # how far the best epoch's level is better than the first epoch, in the same units (positive: improved)
    noise: float  # one epoch's noise of this curve
    local_noise: float  # one epoch's noise over the settled stretch
    trend_p: float  # how likely the epochs since the best (or since their latest low) would rise as much by chance
    trend_epochs: int  # how many epochs that rank test read
    loss_at_best: float
    loss_now: float  # the training loss of the last epochs, their median (as `rise` measures the monitor)
    loss_settled: float  # the training loss where it settled (as the trend test's noise: SETTLED_FRACTION)
    minimize: bool = True  # the metric as recorded: lower is better
    worst_before_best: float | None = None  # the worst value before the best epoch; None when the first is best
    since_best: tuple[float, ...] = field(default=(), repr=False)  # the epochs since the best, lower is better

    @property
    def noise_levels(self) -> float:
        return self.rise / self.noise

    @property
    def level_bar(self) -> float:
        """How many noise levels the level test asks of the rise, after this many looks at the run."""
        return STRONG_RISE * math.sqrt(math.log(max(self.epochs, 2)) / math.log(LEVEL_LOOKS))

    @property
    def level_evidence(self) -> bool:
        """The rise clears the level bar, and either stays within what the run gained or comes in
        rising order (see LEVEL_LOOKS)."""
        return self.noise_levels >= self.level_bar and (self.rise <= self.gained or self.trend_p < TREND_P)

    @cached_property
    def trend_rise(self) -> float:
        """The Theil-Sen line's rise over the epochs since the best, in the metric's units; drawn
        only when the ranks rise (0 otherwise), and only when asked: a fit reads every pair of epochs."""
        return fitted_rise(list(self.since_best)) if self.trend_p < TREND_P else 0.0

    @property
    def trend_levels(self) -> float:
        return self.trend_rise / self.local_noise

    @property
    def trend_evidence(self) -> bool:
        return self.trend_p < TREND_P and self.trend_levels >= TREND_RISE

    @property
    def noise_evidence(self) -> bool:
        """The level or the trend test passes, on enough epochs to measure the noise."""
        return self.epochs >= MIN_EPOCHS and (self.level_evidence or self.trend_evidence)

    @property
    def gave_back(self) -> bool:
        """The third test (GAVE_BACK_RATIO): a loss that has stood, every epoch since its best, at
        least that many times its best and above every epoch before the best."""
        if not (self.minimize and self.best > 0 and self.worst_before_best is not None
                and len(self.since_best) >= AVERAGED_EPOCHS):
            return False
        lowest_since = min(self.since_best)  # a loss: since_best is in its own units
        return lowest_since > self.worst_before_best and lowest_since >= GAVE_BACK_RATIO * self.best

    @property
    def training_holds(self) -> bool:
        """The training loss has not worsened since the best epoch: when it has, training itself went
        wrong (a learning rate too high, a diverging run), which is no overfitting. Not worsened is
        not higher than there by FLAT_LOSS_FRACTION of its descent from where it settled: a training
        loss at its floor (a memorized training set, printed 0.0000 or Keras's clipped minimum each
        epoch) holds level or jitters, and a validation loss rising beside it is overfitting too.
        From where it settled, not from the first epoch: a first loss of 500 (an MSE) would allow
        a rise of 5 on a best of 10."""
        descent = max(self.loss_settled - self.loss_at_best, 0.0)
        return self.loss_now <= self.loss_at_best + FLAT_LOSS_FRACTION * descent

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs_since_best": self.epochs_since_best,
            "rise": self.rise,
            "noise": self.noise,
            "noise_levels": round(self.noise_levels, 2),
            "gained": self.gained,
            "local_noise": self.local_noise,
            "trend_p": round(self.trend_p, 4),
            "trend_epochs": self.trend_epochs,
            "trend_rise": self.trend_rise,
            "loss_at_best": self.loss_at_best,
            "loss_now": self.loss_now,
            "loss_settled": self.loss_settled,
            "worst_before_best": self.worst_before_best,
            "gave_back": self.gave_back,
        }


def judged_epoch(row: dict[str, float], monitor: str) -> bool:
    """Whether an epoch counts in the evidence: its monitored metric and its loss are finite numbers."""
    return _finite(row.get(monitor)) and _finite(row.get("loss"))


def evidence(rows: list[dict[str, float]], monitor: str, minimize: bool) -> Evidence | None:
    """The evidence of overfitting in `rows` as of their last epoch (`judged_epoch` ones); None without two."""
    return _evidence_of([row for row in rows if judged_epoch(row, monitor)], monitor, minimize)


def _evidence_of(usable: list[dict[str, float]], monitor: str, minimize: bool) -> Evidence | None:
    if len(usable) < 2:
        return None
    sign = 1.0 if minimize else -1.0
    worse = [sign * row[monitor] for row in usable]  # lower is better from here on
    best = min(range(len(worse)), key=worse.__getitem__)
    since = worse[best + 1:]
    recent = since[-AVERAGED_EPOCHS:]
    # the best epoch's level: the median of it and its neighbours, so that a lucky dip (the
    # deeper, the longer the plateau it ends) is no reference
    reference = statistics.median(worse[max(0, best - 1):best + 2])
    noise = noise_level(worse)
    settled = max(0, min(_settled(worse[: best + 1]), len(worse) - LOCAL_NOISE_EPOCHS))
    losses = [row["loss"] for row in usable]
    onset = next(index for index, value in enumerate(worse) if value <= worse[best] + ONSET_BAND * noise)
    trend_p, trend_epochs = rising_stretch(since)
    found = Evidence(
        epoch=int(usable[-1][EPOCH_COLUMN]),
        epochs=len(usable),
        onset_epoch=int(usable[onset][EPOCH_COLUMN]),
        best_epoch=int(usable[best][EPOCH_COLUMN]),
        epochs_since_best=len(since),
        best=usable[best][monitor],
        now=usable[-1][monitor],
        rise=statistics.median(recent) - reference if recent else 0.0,
        gained=worse[0] - reference,
        noise=noise,
        local_noise=noise_level(worse[settled:]),
        trend_p=trend_p,
        trend_epochs=trend_epochs,
        loss_at_best=losses[best],
        loss_now=statistics.median(losses[-AVERAGED_EPOCHS:]),
        loss_settled=losses[_settled(losses[: best + 1])],
        minimize=minimize,
        worst_before_best=sign * max(worse[:best]) if best else None,
        since_best=tuple(since),
    )
    if found.gave_back and not found.noise_evidence:  # the third test alone names the best epoch (GAVE_BACK_RATIO)
        return replace(found, onset_epoch=found.best_epoch)
    return found


def _settled(values: list[float]) -> int:
    """Where a curve settled: the first of `values` (up to the best epoch's, the last) within
    SETTLED_FRACTION of the way from the first to the last. There is always one: the first when
    it is no higher than the last, else the last."""
    below = values[-1] + SETTLED_FRACTION * (values[0] - values[-1])
    return next(index for index, value in enumerate(values) if value <= below)


def strength(found: Evidence | None, settings: OverfittingConfig) -> str:
    """'strong' (worth the warning), 'weak' (worth a hint) or 'none'.

    Strong: a level far above the noise, a significant climb that has left the noise, or a loss
    that gave back all it gained.
    """
    if found is None or not found.training_holds or found.rise <= settings.min_delta:
        return "none"
    if found.epochs_since_best >= settings.patience and (found.noise_evidence or found.gave_back):
        return "strong"
    if found.epochs < MIN_EPOCHS:
        return "none"
    if found.epochs_since_best >= 2 and found.noise_levels >= WEAK_RISE:
        return "weak"
    return "none"


class OverfittingWatch:
    """Follows a run epoch by epoch and says once, when the evidence is strong, that it overfits.

    Overfitting: the monitored validation metric trends away from its best by several times
    this run's own epoch-to-epoch noise, or (a loss) gives back all it gained (`Evidence.gave_back`),
    for at least `patience` epochs, while the training loss is no higher than at the best epoch
    (`Evidence.training_holds`). Each judgement is a
    pure function of the rows read so far, so a live run, a resumed one and a history read back
    agree.
    """

    def __init__(self, settings: OverfittingConfig, minimize: bool):
        self.settings = settings
        self.monitor = settings.monitor
        self.minimize = minimize
        self.rows: list[dict[str, float]] = []
        self.judged: list[dict[str, float]] = []  # the rows `evidence` reads, kept as they come, not sifted again each epoch
        self.latest: Evidence | None = None
        self.level = "none"  # the last judged epoch's strength; judged no more once warned, until a new best
        self.alarm: Evidence | None = None  # the evidence when the warning was given
        self.confirmed: Evidence | None = None  # the first strong evidence since the current best epoch

    @classmethod
    def replayed(cls, settings: OverfittingConfig, minimize: bool, rows: list[dict[str, float]]) -> OverfittingWatch:
        """A watch that has read `rows` already (a resumed run's earlier epochs), silently."""
        watch = cls(settings, minimize)
        for row in rows:
            watch.observe(row)
        return watch

    @property
    def onset_epoch(self) -> int | None:
        return self.confirmed.onset_epoch if self.detected else None

    @property
    def stops(self) -> bool:
        """Training ends at the warning (`training.overfitting.stop`), and it was given."""
        return self.settings.stop and self.alarm is not None

    @property
    def detected(self) -> bool:
        """Strong evidence was seen since the current best epoch: no new best has withdrawn it."""
        return (
            self.confirmed is not None and self.latest is not None
            and self.confirmed.best_epoch == self.latest.best_epoch
        )

    def observe(self, row: dict[str, float]) -> str | None:
        """Read one epoch's row; returns the warning the first time the evidence is strong."""
        self.rows.append(row)
        if judged_epoch(row, self.monitor):
            self.judged.append(row)
        found = _evidence_of(self.judged, self.monitor, self.minimize)
        if found is None:
            return None
        self.latest = found
        if self.alarm is not None and self.detected:
            # warned, and no new best since: nothing more can change, and judging again would draw
            # the Theil-Sen line through every epoch since the best, each epoch, on a long climb
            return None
        self.level = strength(found, self.settings)
        if self.level != "strong":
            return None
        if not self.detected:  # the onset is named once per best epoch, not moved by later noise
            self.confirmed = found
        if self.alarm is not None:  # once a run: a noisy curve would otherwise warn again and again
            return None
        self.alarm = found
        return self.message(found)

    def hint(self) -> str | None:
        """Weaker evidence, for the progress line, until the warning: the metric drifting from its best."""
        if self.level != "weak" or self.latest is None or self.alarm is not None:
            return None
        found = self.latest
        return f"{self.monitor} worse than its best (epoch {found.best_epoch}) for {counted(found.epochs_since_best, 'epoch')}"

    def message(self, found: Evidence) -> str:
        at = f" (epoch {found.best_epoch})" if found.best_epoch != found.onset_epoch else ""
        if not found.noise_evidence:  # the third test's
            why = f"{found.now / found.best:.1f}× its best and above every epoch before it"
        elif found.level_evidence:
            why = f"{found.noise_levels:.1f}× its epoch-to-epoch noise"
        else:  # the trend test's evidence
            why = (
                f"a climb of {found.trend_levels:.1f}× its noise since it settled, rising by rank over its last "
                f"{found.trend_epochs} epochs (p={found.trend_p:.2g})"
            )
        moved = "fell" if found.loss_now < found.loss_at_best else "held at its floor"
        return (
            f"overfitting since epoch {found.onset_epoch}: {self.monitor} from its best {found.best:.4g}{at} to "
            f"{found.now:.4g}, {why}, while loss {moved} {found.loss_at_best:.4g} → {found.loss_now:.4g}"
        )

    def verdict(self) -> dict[str, Any]:
        """The run's verdict: the onset, evidence and message are those of the strong evidence
        seen since the best epoch (as the warning said them); `final` is the last epoch's value."""
        detected = self.detected
        latest = self.latest
        recovered = None
        if not detected and self.confirmed is not None and latest is not None:
            recovered = (
                f"validation recovered after the overfitting warning: {self.monitor} reached a new best "
                f"{latest.best:.4g} at epoch {latest.best_epoch}"
            )
        return {
            "detected": detected,
            "onset_epoch": self.confirmed.onset_epoch if detected else None,
            "warned_at_epoch": self.alarm.epoch if self.alarm else None,
            "monitor": self.monitor,
            "direction": Direction.min if self.minimize else Direction.max,
            "best": latest.best if latest else None,
            "best_epoch": latest.best_epoch if latest else None,
            "final": latest.now if latest else None,
            "evidence": {"epoch": self.confirmed.epoch, **self.confirmed.as_dict()} if detected else None,
            "gap": generalization_gap(self.rows[-1] if self.rows else {}, self.monitor, self.minimize),
            "message": self.message(self.confirmed) if detected else None,
            "recovered": recovered,
            "stopped_at_epoch": self.alarm.epoch if self.stops else None,
        }


def generalization_gap(row: dict[str, float], monitor: str, minimize: bool) -> dict[str, Any] | None:
    """How much better the monitored metric is on the training data than on validation, at `row`."""
    train_key = metric_name(monitor)
    if train_key == monitor or not (_finite(row.get(train_key)) and _finite(row.get(monitor))):
        return None
    train, validation = row[train_key], row[monitor]
    return {
        "metric": train_key,
        "epoch": int(row[EPOCH_COLUMN]),
        "train": train,
        "validation": validation,
        "gap": (validation - train) if minimize else (train - validation),
    }


def _layer_names(config: ExperimentConfig) -> list[str]:
    return [name for item in config.model.layers for name in item]


def overfitting_advice(
    config: ExperimentConfig, verdict: dict[str, Any], epochs_run: int, parameters: int, train_samples: int
) -> list[str]:
    """What to try against the overfitting this config showed."""
    if not verdict["detected"]:
        return []
    advice = []
    onset = verdict["onset_epoch"]
    if epochs_run - onset >= EPOCHS_PAST_ONSET:
        advice.append(
            f"{epochs_run - onset} epochs ran past the onset: train for `epochs: {onset}`, or add "
            f"`training.early_stopping: {{monitor: {verdict['monitor']}, patience: 2}}`"
        )
    if not any("Dropout" in name for name in _layer_names(config)):
        advice.append("the model has no Dropout: add `- Dropout: {rate: 0.5}` before the last Dense layer")
    if _is_image_dataset(config) and not config.model.augmentation:
        advice.append(
            f"images without augmentation: add `model.augmentation` ({_fitting_transforms(config)}) "
            "so each epoch sees new variants"
        )
    if parameters > PARAMETERS_PER_EXAMPLE * train_samples:
        advice.append(
            f"{parameters:,} parameters for {train_samples:,} training examples: try fewer units or layers, "
            "or weight regularization (`kernel_regularizer: l2`)"
        )
    return advice


def _fitting_transforms(config: ExperimentConfig) -> str:
    """The augmentation layers that keep this dataset's classes: no flips for digits."""
    mirrored_keeps_class = DATASETS[config.dataset.name].mirrored_keeps_class
    if mirrored_keeps_class is False:
        return "RandomRotation, RandomZoom, RandomTranslation; not RandomFlip: a mirrored digit is another symbol"
    if mirrored_keeps_class:
        return "RandomFlip, RandomRotation, RandomZoom"
    return "RandomRotation, RandomZoom, and RandomFlip if a mirrored image keeps its class"


def _is_image_dataset(config: ExperimentConfig) -> bool:
    options = DATASETS[config.dataset.name].options
    return "image_size" in options or options == IMAGE_OPTIONS


def training_notes(rows: list[dict[str, float]], config: ExperimentConfig, minimize: bool) -> list[str]:
    """Underfitting and plateau notes: validation still improving at the end, or never learning at all.

    `minimize`: whether a lower `training.monitor` is better.

    "Train longer" rests on the monitored validation metric, not on the training accuracy:
    a training accuracy that keeps rising is also what overfitting looks like.
    """
    losses = [row["loss"] for row in rows if _finite(row.get("loss"))]
    notes = []
    if len(losses) >= 2 and abs(losses[0] - losses[-1]) <= FLAT_LOSS_FRACTION * abs(losses[0]):
        notes.append(
            f"the loss stayed flat ({losses[0]:.4g} → {losses[-1]:.4g}): the model is not learning; check "
            f"the learning rate, that the last activation fits the loss "
            f"({', '.join(loss.name for _, loss, _ in config.losses())}), and the labels"
        )
        return notes
    monitor = config.training.monitor
    values = [row[monitor] for row in rows if _finite(row.get(monitor))]
    if monitor.startswith("val_") and len(values) >= 2:
        best_before = min(values[:-1]) if minimize else max(values[:-1])
        if (values[-1] < best_before) if minimize else (values[-1] > best_before):
            notes.append(
                f"{monitor} was still improving at the last epoch ({values[-2]:.4g} → {values[-1]:.4g}): "
                "the model may be underfitting; train longer (`training.epochs`)"
            )
    return notes
