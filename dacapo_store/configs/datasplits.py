"""Data split configs: which datasets train and which validate."""

from __future__ import annotations

import attrs

from ._base import Verifiable, family_base, field, register_config
from .datasets import DatasetConfig


@family_base
@attrs.define
class DataSplitConfig(Verifiable):
    """Base of the data split configs."""

    name: str = field("A unique name for this data split.")


def _verify_all(owner: str, datasets: list[DatasetConfig]) -> tuple[bool, str]:
    for dataset in datasets:
        ok, why = dataset.verify()
        if not ok:
            return False, f"{owner}: {why}"
    return True, "No validation for this DataSplitConfig"


@register_config
@attrs.define
class TrainValidateDataSplitConfig(DataSplitConfig):
    """Datasets to train on and datasets to validate on."""

    train_configs: list[DatasetConfig] = field("The datasets to train on.")
    validate_configs: list[DatasetConfig] = field("The datasets to validate on.")

    def verify(self) -> tuple[bool, str]:
        return _verify_all(self.name, [*self.train_configs, *self.validate_configs])


@register_config
@attrs.define
class DummyDataSplitConfig(DataSplitConfig):
    """A split with one training dataset, for demos and tests."""

    train_config: DatasetConfig = field("The dataset to train on.")

    def verify(self) -> tuple[bool, str]:
        return _verify_all(self.name, [self.train_config])
