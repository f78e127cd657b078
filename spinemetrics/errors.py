"""Exceptions with one-line, actionable messages.

Every error raised on purpose by spinemetrics derives from :class:`SpinemetricsError`.
The message is a single line that names the problem *and* the fix, so that the CLI can
print it as is (no traceback) and batch runs can store it in their error table.
"""

from __future__ import annotations


class SpinemetricsError(Exception):
    """Base class: a problem the user can fix; ``str(err)`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class InputError(SpinemetricsError, ValueError):
    """An input file or argument cannot be used (missing, corrupt, wrong kind)."""


class ImageGeometryError(InputError):
    """An image has unusable geometry (2D/4D, missing spacing, degenerate affine)."""


class LabelError(InputError):
    """A label map is empty, has unknown ids or lacks a required structure."""


class LevelError(InputError):
    """A level name or id is unknown."""


class ModelError(SpinemetricsError, RuntimeError):
    """The segmentation model cannot be loaded or run."""


class StatsError(SpinemetricsError, ValueError):
    """A table cannot be analysed as asked (missing columns, mixed units, …)."""
