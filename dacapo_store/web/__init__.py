"""`dacapo-store serve`: the registry as a read-only web dashboard and JSON API."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
