"""Architecture configs: the network."""

from __future__ import annotations

import attrs

from ._base import (
    Coordinate,
    Verifiable,
    family_base,
    field,
    register_config,
    to_coordinate,
    to_coordinates,
    to_optional_coordinate,
    to_optional_coordinates,
    to_optional_nested_coordinates,
)


@family_base
@attrs.define
class ArchitectureConfig(Verifiable):
    """Base of the architecture configs."""

    name: str = field("A unique name for this architecture.")


@register_config
@attrs.define
class CNNectomeUNetConfig(ArchitectureConfig):
    """The U-Net of the CNNectome project."""

    input_shape: Coordinate = field("The shape of the network's input.", converter=to_coordinate)
    fmaps_out: int = field("Feature maps of the last layer.")
    fmaps_in: int = field("Channels of the input.")
    num_fmaps: int = field("Feature maps of the first layer.")
    fmap_inc_factor: int = field("Feature map multiplier per level.")
    downsample_factors: list[Coordinate] = field(
        "Downsampling factors between levels.", converter=to_coordinates
    )
    kernel_size_down: list[list[Coordinate]] | None = field(
        "Convolution kernel sizes per level on the way down.",
        default=None,
        converter=to_optional_nested_coordinates,
    )
    kernel_size_up: list[list[Coordinate]] | None = field(
        "Convolution kernel sizes per level on the way up.",
        default=None,
        converter=to_optional_nested_coordinates,
    )
    _eval_shape_increase: Coordinate | None = field(
        "Grow the input by this much when predicting.",
        default=None,
        converter=to_optional_coordinate,
    )
    upsample_factors: list[Coordinate] | None = field(
        "Upsampling factors after the U-Net, for super-resolution.",
        default=None,
        converter=to_optional_coordinates,
    )
    constant_upsample: bool = field(
        "Upsample by repetition rather than transposed convolution.", default=True
    )
    padding: str = field("Convolution padding, 'valid' or 'same'.", default="valid")
    use_attention: bool = field("Use attention gates.", default=False)
    batch_norm: bool = field("Use batch normalization.", default=False)

    def verify(self) -> tuple[bool, str]:
        if self.padding not in ("valid", "same"):
            return False, f"architecture {self.name}: padding must be 'valid' or 'same', got {self.padding!r}"
        dims = len(self.input_shape)
        for factor in self.downsample_factors:
            if len(factor) != dims:
                return False, (
                    f"architecture {self.name}: downsample factor {tuple(factor)} "
                    f"has not the {dims} dimensions of input_shape"
                )
        return True, "No validation for this CNNectomeUNetConfig"


@register_config
@attrs.define
class DummyArchitectureConfig(ArchitectureConfig):
    """A small architecture for demos and tests."""

    num_in_channels: int = field("Channels of the input.")
    num_out_channels: int = field("Channels of the output.")
