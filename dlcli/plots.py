"""Learning curves as a PNG: training against validation, the overfitting onset marked."""

from __future__ import annotations

import io
from pathlib import Path

from dlcli.runs import write_atomic

TAG_COLUMNS = ("epoch", "fold", "phase", "learning_rate", "seconds")


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
    axis.legend(fontsize="small")


def _save(figure, path: Path, title: str) -> None:
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_atomic(path, buffer.getvalue())


def plot_curves(
    rows: list[dict[str, float]],
    path: Path,
    title: str,
    onset_epoch: int | None = None,
    fine_tune_from: int | None = None,
) -> None:
    """One panel per metric (loss first), training and validation; folds drawn as separate lines."""
    metrics = [key for key in rows[0] if key not in TAG_COLUMNS and not key.startswith("val_")]
    metrics.sort(key=lambda key: key != "loss")
    folds = sorted({row.get("fold") for row in rows}, key=lambda fold: fold or 0)
    figure, axes = _figure(len(metrics), 5.5, 4)
    for axis, metric in zip(axes[0], metrics):
        for fold in folds:
            fold_rows = [row for row in rows if row.get("fold") == fold]
            epochs = [row["epoch"] for row in fold_rows]
            suffix = " (each fold)" if fold is not None else ""
            alpha = 1.0 if fold is None else 0.6
            axis.plot(epochs, [row[metric] for row in fold_rows], "o-", color="tab:blue",
                      markersize=3, alpha=alpha, label=f"training{suffix}" if fold in (None, 1) else None)
            if f"val_{metric}" in fold_rows[0]:
                axis.plot(epochs, [row[f"val_{metric}"] for row in fold_rows], "o-", color="tab:orange",
                          markersize=3, alpha=alpha, label=f"validation{suffix}" if fold in (None, 1) else None)
        if onset_epoch is not None:
            axis.axvline(onset_epoch, color="tab:red", linestyle="--", label=f"overfitting from epoch {onset_epoch}")
        if fine_tune_from is not None:
            axis.axvline(fine_tune_from - 0.5, color="tab:green", linestyle=":", label="fine-tuning starts")
        _label(axis, metric)
    _save(figure, path, title)


def plot_comparison(series: list[tuple[str, list[dict[str, float]]]], path: Path, title: str) -> None:
    """Validation curves of several runs on shared axes: val_loss and the first other validation metric."""
    keys = list(dict.fromkeys(k for _, rows in series if rows for k in rows[0] if k.startswith("val_")))
    keys.sort(key=lambda key: key != "val_loss")
    keys = keys[:2]
    figure, axes = _figure(max(len(keys), 1), 6, 4.5)
    for axis, key in zip(axes[0], keys):
        for label, rows in series:
            points = [(row["epoch"], row[key]) for row in rows if key in row]
            if points:
                axis.plot(*zip(*points), "o-", markersize=3, label=label)
        _label(axis, key)
    _save(figure, path, title)
