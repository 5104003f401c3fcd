"""Training as a plan of stages: what a config trains, in what order — no TensorFlow here.

A plain run is one stage; a fine-tune run two (the head on the frozen base, then the
top of the base unfrozen at `fine_tune.learning_rate`); a k-fold run one per fold, each a
fresh model on its fold; a precompute run one, its head trained on the base's features.
`dlcli train --resume` plans the same stages and skips those its checkpoint finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlcli.config import ExperimentConfig


@dataclass(frozen=True)
class Stage:
    index: int
    epochs: int  # how many epochs it trains, uninterrupted and not stopped early
    label: str = ""  # before each epoch's progress line, e.g. "fold 2/4  "
    fold: int | None = None  # a fresh model, trained and saved on this fold of the data
    phase: int | None = None  # 1 or 2 of a fine-tune run
    on_features: bool = False  # the head alone, on features the frozen base computed once
    learning_rate: float | None = None  # instead of the optimizer's (fine-tune's phase 2)
    continues: bool = False  # the previous stage's model, its epochs numbered on from that stage's last

    @property
    def tags(self) -> dict[str, int]:
        """The columns that tell this stage's rows of history.csv apart."""
        return {"fold": self.fold} if self.fold is not None else {"phase": self.phase} if self.phase else {}


def plan_stages(config: ExperimentConfig) -> list[Stage]:
    training, base = config.training, config.model.base
    if training.kfold:
        k = training.kfold
        return [Stage(n - 1, training.epochs, f"fold {n}/{k}  ", fold=n) for n in range(1, k + 1)]
    if base is not None and base.precompute:
        return [Stage(0, training.epochs, on_features=True)]
    if training.fine_tune is not None:
        return [
            Stage(0, training.epochs, "head  ", phase=1),
            Stage(1, training.fine_tune.epochs, "fine-tune  ", phase=2,
                  learning_rate=training.fine_tune.learning_rate, continues=True),
        ]
    return [Stage(0, training.epochs)]


def stage_of(stages: list[Stage], fold: int | None, phase: int | None) -> Stage:
    """The stage an older dlcli's checkpoint ({epoch, fold?, phase?}) was in."""
    return next(
        (stage for stage in stages if stage.fold == fold and (stage.phase or None) == (phase or None)), stages[0]
    )
