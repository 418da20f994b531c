"""The DaCapo config families: attrs classes, no I/O, no knowledge of stores."""

from ._base import Coordinate, register_config
from .architectures import ArchitectureConfig, CNNectomeUNetConfig, DummyArchitectureConfig
from .arrays import ArrayConfig, DummyArrayConfig, ZarrArrayConfig
from .augments import (
    AugmentConfig,
    ElasticAugmentConfig,
    GammaAugmentConfig,
    IntensityAugmentConfig,
    SimpleAugmentConfig,
)
from .datasets import DatasetConfig, DummyDatasetConfig, RawGTDatasetConfig
from .datasplits import DataSplitConfig, DummyDataSplitConfig, TrainValidateDataSplitConfig
from .runs import RunConfig
from .starts import StartConfig
from .tasks import AffinitiesTaskConfig, DistanceTaskConfig, DummyTaskConfig, OneHotTaskConfig, TaskConfig
from .trainers import DummyTrainerConfig, GunpowderTrainerConfig, TrainerConfig

__all__ = [
    "AffinitiesTaskConfig",
    "ArchitectureConfig",
    "ArrayConfig",
    "AugmentConfig",
    "CNNectomeUNetConfig",
    "Coordinate",
    "DataSplitConfig",
    "DatasetConfig",
    "DistanceTaskConfig",
    "DummyArchitectureConfig",
    "DummyArrayConfig",
    "DummyDataSplitConfig",
    "DummyDatasetConfig",
    "DummyTaskConfig",
    "DummyTrainerConfig",
    "ElasticAugmentConfig",
    "GammaAugmentConfig",
    "GunpowderTrainerConfig",
    "IntensityAugmentConfig",
    "OneHotTaskConfig",
    "RawGTDatasetConfig",
    "RunConfig",
    "SimpleAugmentConfig",
    "StartConfig",
    "TaskConfig",
    "TrainValidateDataSplitConfig",
    "TrainerConfig",
    "ZarrArrayConfig",
    "register_config",
]
