"""Data split configs: which datasets train and which validate."""

from __future__ import annotations

from pathlib import Path

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


@register_config
@attrs.define
class SimpleDataSplitConfig(DataSplitConfig):
    """Datasets found by layout: `<path>/<train_group_name>/*` and `<path>/<validate_group_name>/*`."""

    # DaCapo declares `path` before `name` here, so its documents have them in that order.
    path: Path = field("The container of the train and validate groups.", converter=Path)
    name: str = field("A unique name for this data split.")
    train_group_name: str = field("The group of training datasets.", default="train")
    validate_group_name: str = field("The group of validation datasets.", default="test")
    raw_name: str = field("The name of the raw arrays.", default="raw")
    gt_name: str = field("The name of the ground truth arrays.", default="labels")
    mask_name: str = field("The name of the mask arrays.", default="mask")
