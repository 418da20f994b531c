"""Task configs: what the network predicts and how it is scored."""

from __future__ import annotations

from pathlib import Path

import attrs

from ._base import Coordinate, Verifiable, family_base, field, register_config, to_coordinates


@family_base
@attrs.define
class TaskConfig(Verifiable):
    """Base of the task configs."""

    name: str = field("A unique name for this task.")


@register_config
@attrs.define
class DistanceTaskConfig(TaskConfig):
    """Predict signed distances to object boundaries."""

    channels: list[str] = field("One output channel per class.")
    clip_distance: float = field("Clip distances to this value, in world units.")
    tol_distance: float = field("Tolerance distance for evaluation, in world units.")
    scale_factor: float = field("Scale factor of the distance transform.", default=1)
    mask_distances: bool = field("Mask distances that may be cut off by the volume's edge.", default=True)
    clipmin: float = field("Minimum of the loss weight clip.", default=0.05)
    clipmax: float = field("Maximum of the loss weight clip.", default=0.95)


@register_config
@attrs.define
class AffinitiesTaskConfig(TaskConfig):
    """Predict affinities, optionally with local shape descriptors."""

    neighborhood: list[Coordinate] = field("The affinity offsets.", converter=to_coordinates)
    lsds: bool = field("Also predict local shape descriptors.", default=False)
    num_lsd_voxels: int = field("Sigma of the LSDs, in voxels.", default=10)
    downsample_lsds: int = field("Downsample LSDs by this factor.", default=1)
    lsds_to_affs_weight_ratio: float = field("Weight of the LSD loss relative to affinities.", default=1)
    affs_weight_clipmin: float = field("Minimum of the affinity weight clip.", default=0.05)
    affs_weight_clipmax: float = field("Maximum of the affinity weight clip.", default=0.95)
    lsd_weight_clipmin: float = field("Minimum of the LSD weight clip.", default=0.05)
    lsd_weight_clipmax: float = field("Maximum of the LSD weight clip.", default=0.95)
    background_as_object: bool = field("Treat background as an object.", default=False)


@register_config
@attrs.define
class OneHotTaskConfig(TaskConfig):
    """Predict one class per voxel."""

    classes: list[str] = field("The class names.")
    kernel_size: int | None = field("Kernel size of the prediction head.", default=None)


@register_config
@attrs.define
class DummyTaskConfig(TaskConfig):
    """A small task for demos and tests."""

    embedding_dims: int = field("Dimensions of the embedding.")
    detection_threshold: float = field("Threshold for detections.")


@register_config
@attrs.define
class HotDistanceTaskConfig(TaskConfig):
    """Predict one-hot classes and signed distances together."""

    channels: list[str] = field("One output channel per class.")
    clip_distance: float = field("Clip distances to this value, in world units.")
    tol_distance: float = field("Tolerance distance for evaluation, in world units.")
    scale_factor: float = field("Scale factor of the distance transform.", default=1)
    mask_distances: bool = field("Mask distances that may be cut off by the volume's edge.", default=False)
    kernel_size: int | None = field("Kernel size of the prediction head.", default=None)


@register_config
@attrs.define
class InnerDistanceTaskConfig(TaskConfig):
    """Predict distances to the inside of objects."""

    channels: list[str] = field("One output channel per class.")
    clip_distance: float = field("Clip distances to this value, in world units.")
    tol_distance: float = field("Tolerance distance for evaluation, in world units.")
    scale_factor: float = field("Scale factor of the distance transform.", default=1)


@register_config
@attrs.define
class PretrainedTaskConfig(TaskConfig):
    """Another task, with its prediction head initialised from a weights file."""

    sub_task_config: TaskConfig = field("The task to train.")
    weights: Path = field("The weights file to start the head from.", converter=Path)
