"""Provenance recorded in every output: package version, model, input hash, date."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
from pathlib import Path
from typing import Any

from spinemetrics._version import __version__

__all__ = ["file_sha256", "provenance"]


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file, or of all files of a folder (DICOM series) in sorted order."""
    p = Path(path)
    digest = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            digest.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(chunk_size), b""):
                digest.update(block)
    return digest.hexdigest()


def provenance(input_path: str | os.PathLike[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A flat dict: version, UTC timestamp, platform, input file name + hash, extras.

    Only the file *name* is recorded, never DICOM patient fields.
    """
    info: dict[str, Any] = {
        "spinemetrics_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
    }
    if input_path is not None:
        info["input_name"] = Path(input_path).name
        info["input_sha256"] = file_sha256(input_path)
    info.update(extra)
    return info
