"""Learning curves as a PNG: training against validation, the overfitting onset marked."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from dlcli.columns import DEFAULT_MONITOR, EPOCH_COLUMN, FOLD_COLUMN, NOT_METRIC_COLUMNS
from dlcli.errors import DlcliError
from dlcli.outputs import unusable_output, write_atomic
from dlcli.store.runs import refuse_among_runs

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_plot_file(path: Path, runs_dir: Path, option: str = "--plot") -> None:
    """Refuse, before any work, a plot file that is not a new or earlier PNG of the user's own:
    writing it would destroy a model, a table or a run's own curves."""
    if path.suffix.lower() != ".png":
        raise DlcliError(f"{option} {path}: the plot is a PNG image; give a file name ending in .png")
    if why := unusable_output(path):
        raise DlcliError(f"{option} {path}: {why}")
    refuse_among_runs(path, runs_dir, option)
    if path.is_file():
        with open(path, "rb") as file:
            if file.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise DlcliError(f"{option} {path} exists and is not a PNG image: writing the plot would destroy it; "
                                 "give a new .png file")


def _figure(panels: int, width: float, height: float):
    """A figure of `panels` side-by-side axes, without pyplot: no display, no global state."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * panels, height))
    return figure, figure.subplots(1, panels, squeeze=False)


def _label(axis, metric: str) -> None:
    axis.set_title(metric.replace("_", " "))
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:  # a panel of unlabelled lines has no legend (matplotlib would warn)
        axis.legend(fontsize="small")


def _save(figure, path: Path, title: str) -> None:
    figure.suptitle(title)
    with warnings.catch_warnings():  # many curves' legends may not fit; the plot is no less readable
        warnings.simplefilter("ignore", UserWarning)
        figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_atomic(path, buffer.getvalue())


def smoothed(values: list[float], factor: float) -> list[float]:
    """An exponential moving average, as the book smooths its curves: each point is `factor` of
    the smoothed one before it and `1 - factor` of its own value (0: unchanged)."""
    result: list[float] = []
    for value in values:
        result.append(result[-1] * factor + value * (1 - factor) if result else value)
    return result


def plot_curves(
    rows: list[dict[str, float]],
    path: Path,
    title: str,
    onset_epoch: int | None = None,
    fine_tune_from: int | None = None,
    smooth: float = 0.0,
    from_epoch: int = 1,
) -> None:
    """One panel per metric (loss first), training against validation.

    A k-fold run's folds are drawn faintly, under their per-epoch mean with a band of ±1
    standard deviation. `smooth` smooths every line (an exponential moving average);
    epochs before `from_epoch` are left out (the first ones can dwarf the rest).
    """
    last = max(int(row[EPOCH_COLUMN]) for row in rows)
    if from_epoch > last:  # every epoch would be left out (a run stopped early): drawn from the first, and said
        title, from_epoch = f"{title} (plot.from_epoch {from_epoch} is past the last epoch, {last}: all shown)", 1
    metrics = [key for key in rows[0] if key not in NOT_METRIC_COLUMNS and not key.startswith("val_")]
    metrics.sort(key=lambda key: key != "loss")
    folds = sorted({row[FOLD_COLUMN] for row in rows if FOLD_COLUMN in row})
    figure, axes = _figure(len(metrics), 5.5, 4)
    for axis, metric in zip(axes[0], metrics):
        for key, color, label in ((metric, "tab:blue", "training"), (f"val_{metric}", "tab:orange", "validation")):
            if folds:
                _fold_lines(axis, rows, folds, key, color, label, smooth, from_epoch)
            else:
                points = [(row[EPOCH_COLUMN], row[key]) for row in rows if key in row and row[EPOCH_COLUMN] >= from_epoch]
                if points:
                    epochs, values = zip(*points)
                    axis.plot(epochs, smoothed(list(values), smooth), "o-", color=color, markersize=3, label=label)
        if onset_epoch is not None:
            axis.axvline(onset_epoch, color="tab:red", linestyle="--", label=f"overfitting from epoch {onset_epoch}")
        if fine_tune_from is not None:
            axis.axvline(fine_tune_from - 0.5, color="tab:green", linestyle=":", label="fine-tuning starts")
        _label(axis, metric + (f" (smoothed {smooth:g})" if smooth else ""))
    _save(figure, path, title)


def _fold_lines(axis, rows, folds, key, color, label, smooth, from_epoch) -> None:
    """Each fold's `key` faintly, then their per-epoch mean ±1 std over the epochs every fold reached."""
    import numpy as np

    series = []
    for fold in folds:
        points = {row[EPOCH_COLUMN]: row[key] for row in rows if row.get(FOLD_COLUMN) == fold and key in row}
        if not points:
            return
        series.append(points)
    epochs = sorted(set.intersection(*(set(points) for points in series)))
    epochs = [epoch for epoch in epochs if epoch >= from_epoch]
    if not epochs:
        return
    values = np.array([smoothed([points[epoch] for epoch in epochs], smooth) for points in series])
    for fold_values in values:
        axis.plot(epochs, fold_values, "-", color=color, linewidth=0.8, alpha=0.25)
    mean, std = values.mean(axis=0), values.std(axis=0)
    axis.plot(epochs, mean, "-", color=color, linewidth=2, label=f"{label}, mean of {len(folds)} folds")
    axis.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, label=f"{label} ±1 std")


def _color(index: int) -> str:
    """A run's (or group's) colour, the same in every panel whichever runs log the panel's metric:
    matplotlib's cycle would give the next free colour in each."""
    return f"C{index % 10}"


def _validation_keys(histories: list[list[dict[str, float]]]) -> list[str]:
    """val_loss and the first other validation metric the histories log."""
    keys = list(dict.fromkeys(k for rows in histories if rows for k in rows[0] if k.startswith("val_")))
    keys.sort(key=lambda key: key != DEFAULT_MONITOR)
    return keys[:2]


def plot_comparison(
    series: list[tuple[str, list[dict[str, float]]]], path: Path, title: str, smooth: float = 0.0,
) -> None:
    """Validation curves of several runs on shared axes: val_loss and the first other validation
    metric, each smoothed by `smooth` (an exponential moving average, 0: none)."""
    keys = _validation_keys([rows for _, rows in series])
    figure, axes = _figure(max(len(keys), 1), 6, 4.5)
    for axis, key in zip(axes[0], keys):
        for index, (label, rows) in enumerate(series):
            points = [(row[EPOCH_COLUMN], row[key]) for row in rows if key in row]
            if points:
                epochs, values = zip(*points)
                axis.plot(epochs, smoothed(list(values), smooth), "o-", markersize=3, label=label, color=_color(index))
        _label(axis, key + (f" (smoothed {smooth:g})" if smooth else ""))
    _save(figure, path, title)


def plot_group_comparison(
    series: list[tuple[str, list[list[dict[str, float]]]]], path: Path, title: str, smooth: float = 0.0,
) -> None:
    """Each group's mean validation curve over its runs, with a band of one standard deviation
    across them (seed noise), epoch by epoch as far as its runs go together."""
    import numpy as np

    keys = _validation_keys([rows for _, histories in series for rows in histories])
    figure, axes = _figure(max(len(keys), 1), 6, 4.5)
    for axis, key in zip(axes[0], keys):
        for index, (label, histories) in enumerate(series):
            curves = [smoothed([row[key] for row in rows if key in row], smooth) for rows in histories]
            curves = [curve for curve in curves if curve]
            if not curves:
                continue
            epochs = min(len(curve) for curve in curves)
            values = np.array([curve[:epochs] for curve in curves])
            mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(epochs)
            axis.plot(range(1, epochs + 1), mean, "o-", markersize=3, label=f"{label} (n={len(values)})", color=_color(index))
            axis.fill_between(range(1, epochs + 1), mean - std, mean + std, color=_color(index), alpha=0.2)
        _label(axis, key + (f" (smoothed {smooth:g})" if smooth else "") + ", mean ± std over seeds")
    _save(figure, path, title)
