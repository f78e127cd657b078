"""Phantom label sources: the render cache follows the phantom code; sub-label mapping."""

from __future__ import annotations

import numpy as np
import pytest

from spinemetrics.labels import Structure as S
from spinemetrics.segment import sources
from spinemetrics.segment.synth import _PRIORS


@pytest.fixture(scope="module")
def cached_phantom(tmp_path_factory):
    cache = tmp_path_factory.mktemp("phantom_cache")
    src = sources.phantom_source(3, cache)
    return cache, src


def test_cache_records_the_phantom_code_fingerprint(cached_phantom):
    cache, src = cached_phantom
    z = np.load(cache / "phantom_3.npz")
    assert str(z["fingerprint"]) == sources.phantom_fingerprint()
    again = sources.phantom_source(3, cache)
    assert np.array_equal(again.sub, src.sub)


def test_stale_cache_is_skipped_then_rendered_again(cached_phantom, monkeypatch, caplog):
    cache, src = cached_phantom
    stale = cache / "phantom_3.npz"
    before = stale.stat().st_mtime_ns
    monkeypatch.setattr(sources, "phantom_fingerprint", lambda: "0123456789abcdef")
    assert sources.phantom_sources([3], cache, cached_only=True) == []
    stale_lines = [r.getMessage() for r in caplog.records if "stale" in r.getMessage()]
    assert len(stale_lines) == 1 and "1 cached phantom(s)" in stale_lines[0]
    fresh = sources.phantom_source(3, cache)
    z = np.load(stale)
    assert str(z["fingerprint"]) == "0123456789abcdef"
    assert stale.stat().st_mtime_ns != before
    # rendering is deterministic per seed: the re-rendered map is the same map
    assert np.array_equal(fresh.sub, src.sub)


def test_cauda_equina_strands_are_thecal_sac_with_nerve_like_contrast(cached_phantom):
    _, src = cached_phantom
    lut = sources.base_lut()
    assert (src.sub == 55).sum() > 100
    assert lut[55] == S.thecal_sac
    for contrast in ("T2", "STIR"):  # fluid-bright sequences: strands dark within the CSF
        assert _PRIORS[contrast][55] < _PRIORS[contrast][50] - 0.3
    # every phantom sub-label belongs to a class or to the background blobs
    assert set(np.unique(lut[src.sub]).tolist()) <= set(range(sources.N_CLASSES))


def test_missing_real_maps_warn_and_are_not_cached_as_empty(tmp_path, caplog):
    cache = tmp_path / "cache"
    with caplog.at_level("WARNING", logger="spinemetrics.segment.sources"):
        got = sources.default_sources(tmp_path / "not_the_data", phantom_seeds=[], seed=2,
                                      cache_dir=cache)
    assert got == []
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "panoptica_lumbar_labels" in warned and "totalseg" in warned and "--data" in warned
    # a later run with the right folder must not find an empty list cached under these keys
    assert not (cache / "panoptica_2.npz").exists() and not (cache / "totalseg.npz").exists()


def test_real_maps_are_found_and_cached(shared_data, tmp_path):
    cache = tmp_path / "cache"
    got = sources.default_sources(shared_data, phantom_seeds=[], seed=0, cache_dir=cache)
    names = [s.name for s in got]
    assert "panoptica/ref.nii.gz" in names and any(n.startswith("totalseg") for n in names)
    again = sources.default_sources(tmp_path / "elsewhere", phantom_seeds=[], seed=0,
                                    cache_dir=cache)
    assert [s.name for s in again] == names  # served from the cache, no data folder needed


def test_stale_real_source_cache_is_rebuilt(shared_data, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = sources.default_sources(shared_data, phantom_seeds=[], seed=0, cache_dir=cache)
    assert str(np.load(cache / "totalseg.npz")["fingerprint"]) == \
        sources.real_sources_fingerprint()
    monkeypatch.setattr(sources, "real_sources_fingerprint", lambda: "fedcba9876543210")
    # other code wrote the cache: the data folder is needed again, and it is rebuilt
    assert sources.default_sources(tmp_path / "elsewhere", phantom_seeds=[], seed=0,
                                   cache_dir=cache) == []
    again = sources.default_sources(shared_data, phantom_seeds=[], seed=0, cache_dir=cache)
    assert str(np.load(cache / "totalseg.npz")["fingerprint"]) == "fedcba9876543210"
    assert [s.name for s in again] == [s.name for s in first]
    for a, b in zip(again, first, strict=True):
        assert np.array_equal(a.sub, b.sub)


def test_contrast_priors_of_phantom_tissues_never_land_on_organs(shared_data):
    """Priors keyed by phantom background-tissue ids (220 + t) must not also name a
    TotalSegmentator organ, or an organ gets fat's brightness."""
    ts = sources.totalseg_sources(shared_data)
    assert ts
    organ_ids = set()
    for src in ts:
        organ_ids |= {i for i in np.unique(src.sub).tolist() if 200 <= i < 250}
    assert len(organ_ids) > 12  # many organs, each its own background tissue
    tissue_prior_ids = {k for p in _PRIORS.values() for k in p if 220 <= k < 250}
    assert tissue_prior_ids >= {221, 241, 248}
    assert not organ_ids & set(range(sources._TISSUE0, 250))
