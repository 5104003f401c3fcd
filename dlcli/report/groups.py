"""Runs of one experiment taken together, and whether two experiments differ by more than seed noise.

A group is the runs whose configs differ only in their seed (store.runs.group_of). Each
metric of a group is its runs' mean, standard deviation and a 95% confidence interval of the
mean (Student's t). Each group is then set against the group best on that metric with
Welch's t-test (scipy): it fits a handful of seeds (exact for normal noise, no equal-variance
assumption, and a t rather than a normal law for the few degrees of freedom), where a
bootstrap of 3-5 values cannot resample enough to hold its level. The best group is chosen by
the very values tested, so its differences are the largest of all the pairs of groups: each
test is made at 5% divided by the number of pairs (Bonferroni), and each interval at the
matching confidence, so that the chance of calling any group different when none is stays at
5% whichever comes out best, and an interval excludes 0 exactly when the verdict is not
"within seed noise". A group of one run has no
spread of its own: where groups of the same dataset and model (layer classes) have several
runs, their pooled standard deviation is its seed noise, and the comparison says so; else it
cannot be told from noise.

Pure functions over run records; scipy is imported only when groups are compared.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

from dlcli.curves.verdicts import minimizes
from dlcli.report.compare import Comparison, column_metric
from dlcli.store.runs import RunRecord, group_of, plotted_history

CONFIDENCE = 0.95
SIGNIFICANCE = 1 - CONFIDENCE
# the verdicts, as the table and the JSON say them
BETTER, WORSE, WITHIN_NOISE, ONE_RUN = "better", "worse", "within seed noise", "cannot tell: one run"
DIFFERS = "differs"  # a metric whose better direction the runs do not record
REPEAT_HINT = "repeat it over seeds: dlcli train CONFIG --repeat 5"


@dataclass
class Spread:
    """One metric over a group's runs."""

    n: int
    mean: float
    std: float | None  # None for one run
    low: float | None  # the mean's confidence interval
    high: float | None


@dataclass
class Difference:
    """A group's metric against the best group's: the difference of the means (this minus the
    best), its interval (95% for all the pairs of groups together), the p-value (multiplied by
    the number of pairs) and what it means."""

    best_group: str
    difference: float
    low: float | None
    high: float | None
    p: float | None
    verdict: str
    noise: str  # where the seed noise came from


@dataclass
class Group:
    id: str
    label: str  # the differing config keys' values that make this group
    runs: list[str]
    seeds: list[Any]
    family: tuple[str, tuple[str, ...]]  # dataset and layer classes: whose seed noise is alike
    values: dict[str, list[float]] = field(default_factory=dict)  # metric column -> one value per run
    differences: dict[str, Difference] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The seeds the group was trained with: a seed trained again draws the same weights, data
        order and dropout (the same numbers on a CPU), so it is one sample of the seed noise, not two."""
        return len({_seed_key(seed) for seed in self.seeds})

    @property
    def shared_seeds(self) -> dict[str, int]:
        """Seeds (as written) with more than one run, and how many runs each."""
        keys = [_seed_key(seed) for seed in self.seeds]
        return {key: keys.count(key) for key in dict.fromkeys(keys) if keys.count(key) > 1}

    @functools.cached_property
    def spreads(self) -> dict[str, Spread]:
        """Each metric's spread over the group's seeds; made when first asked for (scipy's t
        quantiles cost a third of a second to import: not for a table of one group)."""
        return {column: spread(values) for column, values in self.values.items()}

    def as_dict(self, metrics: list[str]) -> dict[str, Any]:
        return {
            "group": self.id, "label": self.label, "n": self.n, "runs": self.runs, "seeds": self.seeds,
            "shared_seeds": [{"seed": json.loads(seed), "runs": count} for seed, count in self.shared_seeds.items()],
            "metrics": {
                column: {**asdict(self.spreads[column]), **_difference_dict(self.differences.get(column))}
                for column in metrics if column in self.spreads
            },
        }


def _seed_key(seed: Any) -> str:
    """A seed as a key: a config edited by hand may hold any YAML there."""
    return json.dumps(seed, sort_keys=True, default=str)


def _difference_dict(difference: Difference | None) -> dict[str, Any]:
    if difference is None:
        return {"verdict": None}
    return {"difference": difference.difference, "difference_low": difference.low, "difference_high": difference.high,
            "p": difference.p, "verdict": difference.verdict, "best_group": difference.best_group,
            "noise": difference.noise}


def _family(config: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The dataset and the layer classes of a run's config.yaml as written: a file edited or torn
    by hand may hold any YAML where a mapping or list belongs, and still be compared."""
    dataset, model = config.get("dataset"), config.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    classes = tuple(
        str(next(iter(layer), "")) if isinstance(layer, dict) else str(layer)
        for layer in (layers if isinstance(layers, list) else [])
    )
    # two files of one kind (csv, image_folder) are two datasets
    name = f"{dataset.get('name', '')} {dataset.get('path') or ''}".strip() if isinstance(dataset, dict) else ""
    return (name, classes)


def groups_of(records: list[RunRecord], comparison: Comparison) -> list[Group]:
    """The compared runs by group, in the order their first run is compared, with each metric's
    spread and its difference from the group best on it (in the direction the runs recorded)."""
    rows = {row["run"]: row for row in comparison.rows}
    keys = [key for key in comparison.keys if key != "seed"]
    groups: dict[str, Group] = {}
    by_seed: dict[str, dict[str, dict[str, list[float]]]] = {}  # group -> seed -> metric column -> its runs' values
    for record in records:
        config = comparison.configs[record.id]
        # a damaged run's config reads as empty, like every other damaged run's: it is no group of theirs
        group_id = record.id if record.id in comparison.damaged else record.info["group"] or group_of(config)
        row = rows[record.id]
        if group_id not in groups:
            label = ", ".join(f"{key}={row[key]}" for key in keys if key in row) or group_id
            groups[group_id] = Group(group_id, label, [], [], _family(config))
        group = groups[group_id]
        group.runs.append(record.id)
        group.seeds.append(config.get("seed"))
        seed_values = by_seed.setdefault(group_id, {}).setdefault(_seed_key(config.get("seed")), {})
        for column in comparison.metrics:
            if isinstance(row.get(column), (int, float)) and math.isfinite(row[column]):
                seed_values.setdefault(column, []).append(float(row[column]))
    for group_id, seeds in by_seed.items():  # one value per seed: its runs' mean
        for seed_values in seeds.values():
            for column, values in seed_values.items():
                groups[group_id].values.setdefault(column, []).append(statistics.fmean(values))
    found = list(groups.values())
    readable = readable_groups(found, comparison)
    for column in comparison.metrics:
        minimize = minimizes(comparison.directions, column_metric(column))
        for dataset in datasets_of(readable):  # a metric on other data is no yardstick
            _set_differences([group for group in readable if group.family[0] == dataset], column, minimize)
    return found


def readable_groups(found: list[Group], comparison: Comparison) -> list[Group]:
    """The groups but the damaged runs' (each a group alone, of no dataset that can be read)."""
    return [group for group in found if group.runs[0] not in comparison.damaged]


def datasets_of(found: list[Group]) -> list[str]:
    return list(dict.fromkeys(group.family[0] for group in found))


def comparison_notes(found: list[Group], comparison: Comparison) -> list[str]:
    """What the reader of a comparison of groups must know: damaged runs, seeds trained twice, several datasets."""
    notes = [
        f"run {run} is compared alone: {damage}" for run, damage in comparison.damaged.items()
    ] + comparison.run_notes
    notes += [
        f"{group.label}: {count} runs of seed {seed}, the same experiment again: counted once; "
        f"seed noise needs other seeds ({REPEAT_HINT}, or --seeds)"
        for group in found for seed, count in group.shared_seeds.items()
    ]
    datasets = datasets_of(readable_groups(found, comparison))
    if len(datasets) > 1:
        notes.append(
            f"runs on {len(datasets)} datasets ({', '.join(name or '?' for name in datasets)}): each group is set "
            "against the best of its own dataset only"
        )
    return notes


def spread(values: list[float]) -> Spread:
    from scipy import stats

    n, mean = len(values), statistics.fmean(values)
    if n < 2:
        return Spread(n, mean, None, None, None)
    std = statistics.stdev(values)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return Spread(n, mean, std, mean - half, mean + half)


def pooled_noise(groups: list[Group], column: str, family: tuple[str, tuple[str, ...]]) -> tuple[float, int, int]:
    """(standard deviation, degrees of freedom, groups) of the seed noise of `column`, pooled over
    the groups of `family` with more than one run; (nan, 0, 0) when there are none."""
    repeated = [g for g in groups if g.family == family and len(g.values.get(column, [])) >= 2]
    freedom = sum(len(g.values[column]) - 1 for g in repeated)
    if not freedom:
        return math.nan, 0, 0
    variance = sum((len(g.values[column]) - 1) * statistics.variance(g.values[column]) for g in repeated) / freedom
    return math.sqrt(variance), freedom, len(repeated)


def welch(values: list[float], best: list[float], confidence: float) -> tuple[float, float, float]:
    """(p, low, high): Welch's two-sided test of equal means and the interval of the difference."""
    from scipy import stats

    difference = statistics.fmean(values) - statistics.fmean(best)
    if statistics.stdev(values) == 0 and statistics.stdev(best) == 0:  # no noise at all: any difference is real
        return (1.0 if difference == 0 else 0.0), difference, difference
    with warnings.catch_warnings():  # one side without spread (the same value each seed) is exact, not a loss of precision
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(values, best, equal_var=False)
    interval = result.confidence_interval(confidence)
    return float(result.pvalue), float(interval.low), float(interval.high)


def pooled_test(
    values: list[float], best: list[float], noise: float, freedom: int, confidence: float,
) -> tuple[float, float, float]:
    """(p, low, high) with the seed noise of other groups: a t-test of the difference of means."""
    from scipy import stats

    difference = statistics.fmean(values) - statistics.fmean(best)
    error = noise * math.sqrt(1 / len(values) + 1 / len(best))
    if error == 0:
        return (1.0 if difference == 0 else 0.0), difference, difference
    half = stats.t.ppf(0.5 + confidence / 2, freedom) * error
    return float(2 * stats.t.sf(abs(difference) / error, freedom)), difference - half, difference + half


def _set_differences(groups: list[Group], column: str, minimize: bool | None) -> None:
    present = [g for g in groups if column in g.values]
    if len(present) < 2:
        return
    pick = min if minimize else max  # unknown direction: differences from the highest
    best = pick(present, key=lambda g: statistics.fmean(g.values[column]))
    pairs = len(present) * (len(present) - 1) // 2
    confidence = 1 - SIGNIFICANCE / pairs
    for group in present:
        if group is best:
            continue
        values, reference = group.values[column], best.values[column]
        difference = statistics.fmean(values) - statistics.fmean(reference)
        if len(values) >= 2 and len(reference) >= 2:
            p, low, high = welch(values, reference, confidence)
            noise = "Welch's t-test over both groups' seeds"
        else:
            noise_level, freedom, count = pooled_noise(groups, column, group.family)
            if not freedom or best.family != group.family:
                group.differences[column] = Difference(best.id, difference, None, None, None, ONE_RUN, REPEAT_HINT)
                continue
            p, low, high = pooled_test(values, reference, noise_level, freedom, confidence)
            noise = f"seed noise pooled from {count} repeated group(s) of this dataset and model"
        p = min(1.0, p * pairs)
        if pairs > 1:
            noise += f", at 5% over {pairs} pairs of groups"
        called = WITHIN_NOISE if p >= SIGNIFICANCE else (WORSE if minimize is not None else DIFFERS)
        group.differences[column] = Difference(best.id, difference, low, high, p, called, noise)
    others = [group.differences[column].verdict for group in present if group is not best]
    if all(verdict == WORSE for verdict in others):
        called = BETTER
    elif WITHIN_NOISE in others:
        called = WITHIN_NOISE
    else:
        called = ONE_RUN if ONE_RUN in others else DIFFERS
    best.differences[column] = Difference(best.id, 0.0, None, None, None, called, "the best group on this metric")


def group_histories(
    found: list[Group], records: list[RunRecord], left_out: list[str],
) -> list[tuple[str, list[list[dict[str, float]]]]]:
    """Each group's label and its runs' histories, for the plot of its mean curve and band; a damaged
    one is left out of its group's and said in `left_out`."""
    by_id = {record.id: record for record in records}
    return [
        (group.label, [rows for run in group.runs if (rows := plotted_history(by_id[run].folder, left_out))])
        for group in found
    ]
