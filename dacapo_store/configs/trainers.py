"""Trainer configs: how a model is trained."""

from __future__ import annotations

import attrs

from ._base import Verifiable, family_base, field, register_config
from .augments import AugmentConfig


@family_base
@attrs.define
class TrainerConfig(Verifiable):
    """Base of the trainer configs."""

    name: str = field("A unique name for this trainer.")
    batch_size: int = field("The number of samples in a training batch.")
    learning_rate: float = field("The learning rate of the optimizer.")

    def verify(self) -> tuple[bool, str]:
        if self.batch_size <= 0:
            return False, f"trainer {self.name}: batch_size must be > 0, got {self.batch_size}"
        if self.learning_rate <= 0:
            return False, f"trainer {self.name}: learning_rate must be > 0, got {self.learning_rate}"
        return True, f"No validation for this {type(self).__name__}"


@register_config
@attrs.define
class GunpowderTrainerConfig(TrainerConfig):
    """A trainer that feeds batches through a gunpowder pipeline."""

    num_data_fetchers: int = field("Number of processes fetching training data.", default=5)
    augments: list[AugmentConfig] = field("Augments applied to each batch, in order.", factory=list)
    snapshot_interval: int | None = field("Save a snapshot every so many iterations.", default=None)
    min_masked: float | None = field("Reject batches with less masked-in fraction.", default=0.15)
    clip_raw: bool = field("Crop raw data to the ground truth's region.", default=False)
    gt_min_reject: float | None = field("Reject batches with less foreground.", default=None)


@register_config
@attrs.define
class DummyTrainerConfig(TrainerConfig):
    """A small trainer for demos and tests."""

    mirror_augment: bool = field("Mirror batches at random.")
