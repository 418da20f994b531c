"""Augment configs: the augmentations a gunpowder trainer applies."""

from __future__ import annotations

from typing import Any

import attrs

from ._base import Verifiable, dialect_only, family_base, field, register_config, to_tuple


@family_base
@attrs.define
class AugmentConfig(Verifiable):
    """Base of the augment configs (augments have no name)."""


@register_config
@attrs.define
class SimpleAugmentConfig(AugmentConfig):
    """Random mirrors and transposes."""

    augmentation_probability: float = field("Probability of applying the augment.", default=1.0)


@register_config
@attrs.define
class ElasticAugmentConfig(AugmentConfig):
    """Elastic deformation and rotation."""

    control_point_spacing: list[int] = field("Distance between control points, per axis.")
    control_point_displacement_sigma: list[float] = field("Std. dev. of the displacement, per axis.")
    rotation_interval: tuple[float, float] = field(
        "Range of rotation angles, in radians.", converter=to_tuple
    )
    subsample: int = field("Compute the deformation on a grid this much coarser.", default=1)
    uniform_3d_rotation: bool = field("Rotate uniformly in 3D.", default=False)
    augmentation_probability: float = field("Probability of applying the augment.", default=1.0)


@register_config
@attrs.define
class IntensityAugmentConfig(AugmentConfig):
    """Random scale and shift of intensities."""

    scale: tuple[float, float] = field("Range of the intensity scale factor.", converter=to_tuple)
    shift: tuple[float, float] = field("Range of the intensity shift.", converter=to_tuple)
    clip: bool = field("Clip intensities to [0, 1] afterwards.", default=True)
    augmentation_probability: float = field("Probability of applying the augment.", default=1.0)


@register_config
@attrs.define
class GammaAugmentConfig(AugmentConfig):
    """Random gamma correction."""

    gamma_range: tuple[float, float] = field("Range of gamma values.", converter=to_tuple)


@register_config
@attrs.define
class IntensityScaleShiftAugmentConfig(AugmentConfig):
    """A fixed scale and shift of intensities: `x * scale + shift`."""

    scale: float = field("The factor to scale intensities by.")
    shift: float = field("The value to add after scaling.")


@register_config
@dialect_only("main")
@attrs.define
class NoiseAugmentConfig(AugmentConfig):
    """Random noise, skimage's `random_noise` with `kwargs` (DaCapo main only)."""

    kwargs: dict[str, Any] = field(
        "Keyword arguments of skimage.util.random_noise, e.g. {'mode': 'gaussian', 'var': 0.01}.",
        factory=dict,
    )
