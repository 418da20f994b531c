"""Array configs: where a volume of voxels lives."""

from __future__ import annotations

from pathlib import Path

import attrs

from ._base import (
    ONLY_MAIN,
    Coordinate,
    Roi,
    Verifiable,
    family_base,
    field,
    register_config,
    to_coordinate,
    to_groupings,
    to_optional_coordinate,
    to_roi,
    to_tuple,
)

ZARR_SUFFIXES = (".zarr", ".n5")


@family_base
@attrs.define
class ArrayConfig(Verifiable):
    """Base of the array configs."""

    name: str = field("A unique name for this array.")


@register_config
@attrs.define
class ZarrArrayConfig(ArrayConfig):
    """A dataset inside a zarr or n5 container."""

    file_name: Path = field("The path to the zarr or n5 container.", converter=Path)
    dataset: str = field("The name of the dataset inside the container.")
    snap_to_grid: Coordinate | None = field(
        "Snap the array's region of interest to this voxel grid.",
        default=None,
        converter=to_optional_coordinate,
    )
    _axes: list[str] | None = field("The axis names, when the container lacks them.", default=None)
    mode: str | None = field("The mode to open the container in.", default="a")
    ome_metadata: bool = field(
        "Read the array's metadata from OME-NGFF multiscales (DaCapo main only).",
        default=False,
        keys=ONLY_MAIN,
    )

    def verify(self) -> tuple[bool, str]:
        # Only the path's shape is checked: verify() must stay cheap and do no I/O.
        if not any(part.endswith(ZARR_SUFFIXES) for part in self.file_name.parts):
            return False, f"{self.file_name} is not a .zarr or .n5 container"
        return True, "No validation for this ZarrArrayConfig"


@register_config
@attrs.define
class DummyArrayConfig(ArrayConfig):
    """A small array for demos and tests."""


@register_config
@attrs.define
class TiffArrayConfig(ArrayConfig):
    """A volume stored as a TIFF file."""

    file_name: Path = field("The path to the TIFF file.", converter=Path)
    offset: Coordinate = field("The offset of the array, in world units.", converter=to_coordinate)
    voxel_size: Coordinate = field("The size of a voxel, in world units.", converter=to_coordinate)
    axis_names: list[str] = field("The axis names.")
    units: list[str] = field("The unit of each axis.")


@register_config
@attrs.define
class DVIDArrayConfig(ArrayConfig):
    """A volume served by a DVID server."""

    source: tuple[str, str, str] = field(
        "The DVID server, the UUID and the data instance.", converter=to_tuple
    )


# -- wrappers: arrays computed from other arrays (what DaCapo's DataSplitGenerator emits) --------


@register_config
@attrs.define
class BinarizeArrayConfig(ArrayConfig):
    """Channels of label ids: each grouping becomes one binary channel."""

    source_array_config: ArrayConfig = field("The array of label ids.")
    groupings: list[tuple[str, list[int]]] = field(
        "(channel name, label ids) per channel; an empty id list means any non-background id.",
        converter=to_groupings,
    )
    background: int = field("The background label id.", default=0)


@register_config
@attrs.define
class ConcatArrayConfig(ArrayConfig):
    """Several arrays stacked along a channel axis."""

    channels: list[str] = field("The channel names, in order.")
    source_array_configs: dict[str, ArrayConfig] = field("The array of each channel, by channel name.")
    default_config: ArrayConfig | None = field("The array for channels without a source.", default=None)


@register_config
@attrs.define
class ConstantArrayConfig(ArrayConfig):
    """An array of one value, shaped like its source."""

    source_array_config: ArrayConfig = field("The array whose shape and ROI to copy.")
    constant: int = field("The value of every voxel.", default=1)


@register_config
@attrs.define
class CropArrayConfig(ArrayConfig):
    """A region of another array."""

    source_array_config: ArrayConfig = field("The array to crop.")
    roi: Roi = field("The region to keep: (offset, shape) in world units.", converter=to_roi)


@register_config
@attrs.define
class IntensitiesArrayConfig(ArrayConfig):
    """Intensities rescaled from [min, max] to [0, 1]."""

    source_array_config: ArrayConfig = field("The array of raw intensities.")
    min: float = field("The intensity that maps to 0.")
    max: float = field("The intensity that maps to 1.")


@register_config
@attrs.define
class LogicalOrArrayConfig(ArrayConfig):
    """The logical or over the channels of an array."""

    source_array_config: ArrayConfig = field("The array to combine.")


@register_config
@attrs.define
class MergeInstancesArrayConfig(ArrayConfig):
    """Instance arrays merged into one."""

    source_array_configs: list[ArrayConfig] = field("The instance arrays to merge.")


@register_config
@attrs.define
class MissingAnnotationsMaskConfig(ArrayConfig):
    """A mask of where a label array has annotations."""

    source_array_config: ArrayConfig = field("The array of label ids.")
    groupings: list[tuple[str, list[int]]] = field(
        "(channel name, label ids) per channel, as in BinarizeArrayConfig.", converter=to_groupings
    )


@register_config
@attrs.define
class OnesArrayConfig(ArrayConfig):
    """An array of ones shaped like its source."""

    source_array_config: ArrayConfig = field("The array whose shape and ROI to copy.")


@register_config
@attrs.define
class ResampledArrayConfig(ArrayConfig):
    """Another array up- and then downsampled."""

    source_array_config: ArrayConfig = field("The array to resample.")
    upsample: Coordinate = field(
        "The upsampling factor per axis.", converter=to_coordinate, keys={"main": "_upsample"}
    )
    downsample: Coordinate = field(
        "The downsampling factor per axis.", converter=to_coordinate, keys={"main": "_downsample"}
    )
    interp_order: bool = field("The interpolation order (DaCapo types it bool).")


@register_config
@attrs.define
class SumArrayConfig(ArrayConfig):
    """The sum of several arrays."""

    source_array_configs: list[ArrayConfig] = field("The arrays to add up.")
