"""dacapo_store: the experiment registry for DaCapo configs, weights and validation scores."""

from .config_store import (
    ConfigStore,
    DocumentMetadata,
    FileConfigStore,
    MongoConfigStore,
    create_config_store,
)
from .configs import *  # noqa: F403 -- the config classes are public names
from .configs import __all__ as _config_names
from .conversion import converter
from .errors import (
    AmbiguousNameError,
    ConfigInUseError,
    ConfigNotFoundError,
    ConfigValidationError,
    CorruptWeightsError,
    CriterionNotFoundError,
    DacapoStoreError,
    DialectError,
    DuplicateNameError,
    InvalidNameError,
    PickleCheckpointError,
    StoreConnectionError,
    TrainingStatsConflictError,
    UnknownConfigTypeError,
    WeightsNotFoundError,
)
from .options import Options
from .start import LoadReport, Start
from .weights import (
    GridFSWeightsStore,
    LocalWeightsStore,
    TrainingIterationStats,
    Weights,
    WeightsStore,
    create_weights_store,
)

__version__ = "0.1.0"

__all__ = [
    *_config_names,
    "ConfigStore",
    "DocumentMetadata",
    "FileConfigStore",
    "MongoConfigStore",
    "create_config_store",
    "AmbiguousNameError",
    "ConfigInUseError",
    "ConfigNotFoundError",
    "ConfigValidationError",
    "CorruptWeightsError",
    "CriterionNotFoundError",
    "DacapoStoreError",
    "DialectError",
    "DuplicateNameError",
    "InvalidNameError",
    "GridFSWeightsStore",
    "LoadReport",
    "LocalWeightsStore",
    "Options",
    "PickleCheckpointError",
    "Start",
    "TrainingIterationStats",
    "TrainingStatsConflictError",
    "Weights",
    "WeightsStore",
    "create_weights_store",
    "StoreConnectionError",
    "UnknownConfigTypeError",
    "WeightsNotFoundError",
    "converter",
]
