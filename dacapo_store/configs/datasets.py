"""Dataset configs: raw, ground truth and mask arrays that belong together."""

from __future__ import annotations

from pathlib import Path

import attrs

from ._base import Coordinate, Verifiable, family_base, field, register_config, to_optional_coordinates
from .arrays import ArrayConfig


@family_base
@attrs.define
class DatasetConfig(Verifiable):
    """Base of the dataset configs."""

    name: str = field("A unique name for this dataset.")
    weight: int = field("How often this dataset is sampled relative to others.", default=1, kw_only=True)


@register_config
@attrs.define
class RawGTDatasetConfig(DatasetConfig):
    """A dataset of raw data with ground truth and an optional mask."""

    raw_config: ArrayConfig | None = field("The raw input data.", default=None)
    gt_config: ArrayConfig | None = field("The ground truth.", default=None)
    mask_config: ArrayConfig | None = field("Where the ground truth is valid.", default=None)
    sample_points: list[Coordinate] | None = field(
        "Points to sample around, in world units.", default=None, converter=to_optional_coordinates
    )

    def verify(self) -> tuple[bool, str]:
        for part in (self.raw_config, self.gt_config, self.mask_config):
            if part is not None:
                ok, why = part.verify()
                if not ok:
                    return False, f"{self.name}: {why}"
        return True, "No validation for this RawGTDatasetConfig"


@register_config
@attrs.define
class DummyDatasetConfig(DatasetConfig):
    """A small dataset for demos and tests."""

    raw_config: ArrayConfig = field("The raw input data.")


@register_config
@attrs.define
class SimpleDataset(DatasetConfig):
    """A dataset in one zarr group: raw, ground truth and mask under fixed names."""

    path: Path = field("The zarr group holding the arrays.", converter=Path)
    weight: int = field("How often this dataset is sampled relative to others.", default=1)
    raw_name: str = field("The name of the raw array.", default="raw")
    gt_name: str = field("The name of the ground truth array.", default="labels")
    mask_name: str = field("The name of the mask array.", default="mask")
