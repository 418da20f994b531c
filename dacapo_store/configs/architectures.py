"""Architecture configs: the network."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

import attrs

from ._base import (
    Coordinate,
    Verifiable,
    dialect_only,
    family_base,
    field,
    register_config,
    to_coordinate,
    to_coordinates,
    to_optional_coordinate,
    to_optional_coordinates,
    to_optional_nested_coordinates,
)


def to_path(value: Any) -> Path:
    return value if isinstance(value, Path) else Path(value)


def to_str_path(value: Any) -> Any:
    """A path given for a `str | Path` field is kept as its string, as documents hold it."""
    return str(value) if isinstance(value, PurePath) else value


@family_base
@attrs.define
class ArchitectureConfig(Verifiable):
    """Base of the architecture configs."""

    name: str = field("A unique name for this architecture.")


@register_config
@attrs.define
class CNNectomeUNetConfig(ArchitectureConfig):
    """The U-Net of the CNNectome project."""

    input_shape: Coordinate = field(
        "The shape of the network's input.", converter=to_coordinate, keys={"main": "_input_shape"}
    )
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

    num_in_channels: int = field("Channels of the input.", keys={"main": "_num_in_channels"})
    num_out_channels: int = field("Channels of the output.", keys={"main": "_num_out_channels"})


@register_config
@dialect_only("main")
@attrs.define
class WrappedArchitectureConfig(ArchitectureConfig):
    """A network of your own, loaded with `torch.load` from a file (DaCapo main only).

    DaCapo main also takes a torch module object here; such a config can't be stored safely
    (its YAML holds the pickled module, which MongoDB refuses), so only a path is taken.
    """

    _module: Path = field("The pickled or jit-compiled module to load.", converter=to_path)
    fmaps_in: int = field("The number of channels the module takes.")
    fmaps_out: int = field("The number of channels the module gives.")
    _input_shape: Coordinate = field(
        "The input's spatial shape, without batch and channel dimensions.", converter=to_coordinate
    )
    _scale: Coordinate | None = field(
        "How much the module scales each dimension (up- or downsampling networks).",
        default=None,
        converter=to_optional_coordinate,
    )
    trainable_parameters: str | None = field(
        "A regular expression of the parameter names to train; the rest stay frozen.", default=None
    )


@register_config
@dialect_only("main")
@attrs.define
class ModelZooConfig(ArchitectureConfig):
    """A bioimage.io model zoo model: its id, URL or local path (DaCapo main only)."""

    model_id: str = field(
        "The model's id (e.g. 'affable-shark'), rdf.yaml URL, or path to an rdf.yaml or zipped package.",
        converter=to_str_path,
    )
    trainable_layers: str | None = field(
        "A regular expression of the layer names to train; the rest stay frozen.", default=None
    )
