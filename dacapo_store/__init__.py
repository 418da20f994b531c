"""dacapo_store: the experiment registry for DaCapo configs, weights and validation scores."""

from .configs import *  # noqa: F403 -- the config classes are public names
from .configs import __all__ as _config_names
from .config_store import ConfigStore, DocumentMetadata, FileConfigStore, MongoConfigStore, create_config_store
from .conversion import converter
from .errors import (
    ConfigInUseError,
    ConfigNotFoundError,
    ConfigValidationError,
    CorruptWeightsError,
    CriterionNotFoundError,
    DacapoStoreError,
    DuplicateNameError,
    InvalidNameError,
    StoreConnectionError,
    UnknownConfigTypeError,
    WeightsNotFoundError,
)
from .options import Options

__version__ = "0.1.0"

__all__ = [
    *_config_names,
    "ConfigStore",
    "DocumentMetadata",
    "FileConfigStore",
    "MongoConfigStore",
    "create_config_store",
    "ConfigInUseError",
    "ConfigNotFoundError",
    "ConfigValidationError",
    "CorruptWeightsError",
    "CriterionNotFoundError",
    "DacapoStoreError",
    "DuplicateNameError",
    "InvalidNameError",
    "Options",
    "StoreConnectionError",
    "UnknownConfigTypeError",
    "WeightsNotFoundError",
    "converter",
]
