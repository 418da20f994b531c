"""Array configs: where a volume of voxels lives."""

from __future__ import annotations

from pathlib import Path

import attrs

from ._base import Coordinate, Verifiable, family_base, field, register_config, to_optional_coordinate

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

    def verify(self) -> tuple[bool, str]:
        # Only the path's shape is checked: verify() must stay cheap and do no I/O.
        if not any(part.endswith(ZARR_SUFFIXES) for part in self.file_name.parts):
            return False, f"{self.file_name} is not a .zarr or .n5 container"
        return True, "No validation for this ZarrArrayConfig"


@register_config
@attrs.define
class DummyArrayConfig(ArrayConfig):
    """A small array for demos and tests."""
