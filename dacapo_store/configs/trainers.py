"""Trainer configs: how a model is trained."""

from __future__ import annotations

import attrs

from ._base import ONLY_035, ONLY_MAIN, Verifiable, family_base, field, register_config
from .augments import AugmentConfig


@family_base
@attrs.define
class TrainerConfig(Verifiable):
    """Base of the trainer configs.

    DaCapo 0.3.5 requires `batch_size` and `learning_rate` here; DaCapo main moved both to
    the RunConfig, so a trainer read from a main document holds None in them.
    """

    name: str = field("A unique name for this trainer.")
    batch_size: int | None = field(
        "The number of samples in a training batch (DaCapo main: RunConfig.batch_size).",
        default=None,
        keys=ONLY_035,
        required_in=("0.3.5",),
    )
    learning_rate: float | None = field(
        "The learning rate of the optimizer (DaCapo main: RunConfig.learning_rate).",
        default=None,
        keys=ONLY_035,
        required_in=("0.3.5",),
    )

    def verify(self) -> tuple[bool, str]:
        # None: a DaCapo main trainer, whose run holds the batch size and learning rate.
        if self.batch_size is not None and self.batch_size <= 0:
            return False, f"trainer {self.name}: batch_size must be > 0, got {self.batch_size}"
        if self.learning_rate is not None and self.learning_rate <= 0:
            return False, f"trainer {self.name}: learning_rate must be > 0, got {self.learning_rate}"
        return True, f"No validation for this {type(self).__name__}"


@register_config
@attrs.define
class GunpowderTrainerConfig(TrainerConfig):
    """A trainer that feeds batches through a gunpowder pipeline."""

    num_data_fetchers: int = field(
        "Number of processes fetching training data (DaCapo 0.3.5 only).", default=5, keys=ONLY_035
    )
    augments: list[AugmentConfig] = field("Augments applied to each batch, in order.", factory=list)
    snapshot_interval: int | None = field(
        "Save a snapshot every so many iterations (DaCapo main: RunConfig.snapshot_interval).",
        default=None,
        keys=ONLY_035,
    )
    min_masked: float | None = field("Reject batches with less masked-in fraction.", default=0.15)
    clip_raw: bool = field("Crop raw data to the ground truth's region.", default=False)
    gt_min_reject: float | None = field(
        "Reject batches with less foreground (DaCapo 0.3.5 only).", default=None, keys=ONLY_035
    )
    sample_strategy: str | None = field(
        "How batches are sampled: 'integral_mask', 'reject', 'sample_points' or None "
        "(anywhere the center voxel is masked in); DaCapo main only.",
        default=None,
        keys=ONLY_MAIN,
    )


@register_config
@attrs.define
class DummyTrainerConfig(TrainerConfig):
    """A small trainer for demos and tests."""

    # kw_only: the base's fields have defaults now (DaCapo main dropped them).
    mirror_augment: bool = field(
        "Mirror batches at random (DaCapo main calls it dummy_attr).",
        kw_only=True,
        keys={"main": "dummy_attr"},
    )
