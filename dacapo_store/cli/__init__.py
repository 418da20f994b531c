"""The dacapo-store command line."""

from . import commands  # noqa: F401 -- registers the config commands
from .app import app, main

__all__ = ["app", "main"]
