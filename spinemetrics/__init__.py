"""spinemetrics: lumbar-spine MRI morphometry and cohort analytics."""

from spinemetrics._version import __version__
from spinemetrics.errors import SpinemetricsError
from spinemetrics.image import Image
from spinemetrics.labels import Structure

__all__ = ["__version__", "Image", "Structure", "SpinemetricsError"]
