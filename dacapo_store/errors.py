"""The one exception hierarchy of dacapo_store: every error derives from DacapoStoreError."""

from __future__ import annotations


class DacapoStoreError(Exception):
    """Base of every error dacapo_store raises on purpose."""


class ConfigValidationError(DacapoStoreError, ValueError):
    """A document or config does not fit its class; the message names every bad field by path."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors) if errors is not None else [message]


class UnknownConfigTypeError(ConfigValidationError):
    """A `__type__` names no registered class of the family expected at that place."""


class DialectError(ConfigValidationError):
    """A document or config one DaCapo dialect (0.3.5 or main) can't express, or one that mixes
    both; the message names the fields."""


class InvalidNameError(DacapoStoreError, ValueError):
    """A name DaCapo's registries can't hold safely; the message says which rule it breaks.

    A name is a non-empty `str` of printable characters, without `\\`, NUL or other control
    characters, not `.` or `..`, not starting with `.`, at most 250 bytes in UTF-8; `/` only
    on MongoDB (the files backend keeps one file per name).
    """


class AmbiguousNameError(DacapoStoreError, LookupError):
    """Several runs share the name (DaCapo's repetitions on MongoDB); pick one with `repetition=`."""

    def __init__(self, message: str, repetitions: list[int] | None = None) -> None:
        super().__init__(message)
        self.repetitions = list(repetitions or [])


class InvalidCriterionError(InvalidNameError):
    """A criterion name that can't be one: it must read one way in a StartConfig (not `latest`,
    not digits) and be a MongoDB key (no `.`, no `$`). A usage error, as an invalid name is."""


class DuplicateNameError(DacapoStoreError):
    """A different document is already stored under this name."""

    def __init__(self, message: str, differences: list[tuple[str, object, object]] | None = None):
        super().__init__(message)
        self.differences = differences or []


class _NotFound(DacapoStoreError, KeyError):
    # KeyError.__str__ quotes its argument; a message reads better unquoted.
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigNotFoundError(_NotFound):
    """No config of this kind is stored under this name."""


class ConfigInUseError(DacapoStoreError):
    """A stored run starts from the run being deleted."""


class WeightsNotFoundError(_NotFound):
    """No checkpoint is stored for this run and iteration."""


class CorruptWeightsError(DacapoStoreError):
    """A stored checkpoint does not match its recorded checksum."""


class PickleCheckpointError(DacapoStoreError, ValueError):
    """A legacy DaCapo checkpoint is a pickle; reading it runs code, so it needs `allow_pickle=True`."""


class TrainingStatsConflictError(DacapoStoreError, ValueError):
    """Training stats given for an iteration that already has other values."""


class CriterionNotFoundError(_NotFound):
    """A run has no validation scores for the criterion asked for."""


class StoreConnectionError(DacapoStoreError, ConnectionError):
    """The store (a MongoDB server) can't be reached."""


class OptionsError(DacapoStoreError, ValueError):
    """The options file or a DACAPO_* variable can't be used; the message names the file, line and key."""


class UnsupportedDacapoError(DacapoStoreError, ImportError):
    """DaCapo is not installed, does not import, or is a version the DaCapo adapter does not support."""
