"""Errors shared across kbroker's layers."""

from __future__ import annotations


class StartupError(Exception):
    """The broker cannot start (locked or foreign data dir, port in use, ...)."""
