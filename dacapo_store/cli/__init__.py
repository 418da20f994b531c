"""The dacapo-store command line."""

from . import commands, dacapo, demo, migrate, scores, serve, weights  # noqa: F401 -- register the commands
from .app import app, main

__all__ = ["app", "main"]
