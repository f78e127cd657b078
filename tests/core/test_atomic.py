from __future__ import annotations

import pytest

from spinemetrics.atomic import atomic_path, atomic_write_text
from spinemetrics.provenance import file_sha256, provenance


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "table.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".parquet")
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_existing(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_provenance_hashes_input_and_never_paths(tmp_path):
    import hashlib

    f = tmp_path / "sub-01_T2w.nii.gz"
    f.write_bytes(b"abc")
    info = provenance(f, model_version="x")
    assert info["input_sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert info["input_name"] == "sub-01_T2w.nii.gz"
    assert str(tmp_path) not in str(info)
    assert file_sha256(tmp_path) != file_sha256(f)


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        target = atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
