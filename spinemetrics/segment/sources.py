"""Label-map sources for synthesis training: contract classes plus synthesis sub-labels.

A :class:`LabelSource` is a 1 mm isotropic RAS+ volume of *sub-labels* (uint8) and a lookup
table ``lut`` mapping each sub-label to a training class (0–11 of CONTRACT §2, or
:data:`IGNORE` where the source does not know the truth). Sub-labels exist only to give the
image synthesiser more tissue variety than the 12 classes (cortical rim vs marrow, annulus vs
nucleus, background split into organ-like blobs); the network never sees them.

Sub-label numbering (shared by all sources):

* ``0``: outside the source's field of view (air or unknown tissue in the synthetic image);
* ``10*c + k`` (``k`` 0–9) for contract class ``c`` = 1–11 (e.g. 10 cortical rim, 11 marrow);
* ``200``–``249``: background tissue (class 0): ``200``–``219`` random blobs and organs
  (:data:`_ORGAN0`…), ``220 + t`` the phantom's background tissue ``t`` (fat, ilium
  cortex, ligaments…; :data:`_TISSUE0`), which contrast priors address by id — the two
  ranges are disjoint so that a prior meant for phantom fat never lands on an organ;
* ``250``–``254``: tissue whose class is unknown in that source (class :data:`IGNORE`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from spinemetrics.atomic import atomic_path
from spinemetrics.labels import Structure as S

__all__ = [
    "IGNORE",
    "LabelSource",
    "N_CLASSES",
    "resample_nearest_iso",
    "from_contract_seg",
    "panoptica_sources",
    "totalseg_sources",
    "phantom_sources",
    "phantom_fingerprint",
    "real_sources_fingerprint",
    "default_sources",
    "pair_sources",
]

log = logging.getLogger(__name__)

#: Class id excluded from the loss (truth unknown in that source).
IGNORE = 255
#: Network output classes: background + the 11 structures.
N_CLASSES = 12

_BLOB0 = 200
#: Phantom background tissue ``t`` (spinemetrics.phantom tissue ids) is sub-label 220 + t
#: (written ``_BLOB0 + 20 + t`` in :func:`_phantom_sub`, whose source text is part of the
#: phantom cache fingerprint).
_TISSUE0 = _BLOB0 + 20
#: Sub-labels of TotalSegmentator organs: 202–219, reused cyclically; they end where the
#: phantom tissues begin.
_ORGAN0 = _BLOB0 + 2
_N_ORGAN_IDS = _TISSUE0 - _ORGAN0
_UNKNOWN0 = 250


@dataclass
class LabelSource:
    """One training label volume (1 mm isotropic, RAS+ axis order ``[x, y, z]``).

    Parameters
    ----------
    sub : numpy.ndarray
        uint8 sub-label volume.
    lut : numpy.ndarray
        ``(256,)`` uint8 map sub-label → class (0–11 or :data:`IGNORE`).
    name : str
        Where it comes from (for logs and the model card).
    midline_x : float
        Voxel x index of the spinal canal midline, so slabs can be drawn near it.
    """

    sub: np.ndarray
    lut: np.ndarray
    name: str
    midline_x: float
    image: np.ndarray | None = None  # real image on the same grid (fine-tuning pairs)

    @property
    def classes(self) -> np.ndarray:
        return self.lut[self.sub]


def base_lut() -> np.ndarray:
    """LUT with the fixed part of the numbering (10*c+k → c, blobs → 0, unknown → IGNORE)."""
    lut = np.zeros(256, dtype=np.uint8)
    for c in range(1, N_CLASSES):
        lut[10 * c : 10 * c + 10] = c
    lut[_BLOB0:_UNKNOWN0] = 0
    lut[_UNKNOWN0:255] = IGNORE
    lut[255] = IGNORE
    return lut


def resample_nearest_iso(
    array: np.ndarray, affine: np.ndarray, spacing_mm: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a label array to RAS+ and resample it to isotropic voxels (nearest neighbour).

    Returns the new array and its affine.
    """
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(array), affine))
    data = np.asanyarray(img.dataobj)
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    new_shape = np.maximum(1, np.round(np.asarray(data.shape) * zooms / spacing_mm)).astype(int)
    # Voxel-centre aligned nearest sampling, separably (cheap: pure indexing).
    idx = [
        np.clip(((np.arange(n) + 0.5) * spacing_mm / z).astype(int), 0, s - 1)
        for n, z, s in zip(new_shape, zooms, data.shape, strict=False)
    ]
    out = data[np.ix_(*idx)]
    aff = img.affine.copy()
    aff[:3, :3] = img.affine[:3, :3] / zooms[None, :] * spacing_mm
    aff[:3, 3] = img.affine[:3, 3] + img.affine[:3, :3] @ ((spacing_mm / zooms - 1) / 2)
    return np.ascontiguousarray(out), aff


def _shell(mask: np.ndarray, width_vox: int) -> np.ndarray:
    """Voxels of ``mask`` within ``width_vox`` of its boundary."""
    if width_vox <= 0 or not mask.any():
        return np.zeros_like(mask)
    inner = ndi.binary_erosion(mask, iterations=width_vox, border_value=1)
    return mask & ~inner


def _blobs(
    shape: tuple[int, ...], n: int, rng: np.random.Generator, scale_vox: float
) -> np.ndarray:
    """Random organ-like partition of space into ``n`` smooth blobs (argmax of smooth noise).

    Computed on a 3× coarser grid and repeated up (blob edges are blurred later anyway);
    a full-resolution argmax of ``n`` interpolated fields costs minutes on big volumes.
    """
    f = 3
    mid = tuple(max(2, -(-s // f)) for s in shape)
    small = tuple(max(2, int(s / scale_vox)) for s in shape)
    fields = rng.standard_normal((n, *small)).astype(np.float32)
    zoom = [1] + [m / sm for m, sm in zip(mid, small, strict=False)]
    lab = np.argmax(ndi.zoom(fields, zoom, order=1), axis=0).astype(np.uint8)
    for ax in range(3):
        lab = np.repeat(lab, f, axis=ax)
    return np.ascontiguousarray(lab[tuple(slice(0, s) for s in shape)])


def from_contract_seg(
    seg: np.ndarray,
    *,
    name: str,
    rng: np.random.Generator,
    endplate: np.ndarray | None = None,
    background_ignore_mm: float = 0.0,
    known_classes: tuple[int, ...] = tuple(range(1, N_CLASSES)),
    n_blobs: int = 8,
) -> LabelSource:
    """Turn a 1 mm contract-class map (0–11) into a sub-label source.

    Adds cortical rims (bone), annulus/nucleus (disc), a fat-like rim of muscle, and splits
    background into random blobs. ``background_ignore_mm`` > 0 marks background within that
    distance of the spine as :data:`IGNORE`: used for sources that label only the spine, whose
    "background" there really holds unlabelled muscle, fat, roots or ligament.
    """
    seg = np.asarray(seg).astype(np.uint8)
    sub = np.zeros(seg.shape, dtype=np.uint8)
    for c in range(1, N_CLASSES):
        sub[seg == c] = 10 * c
    # Bones: cortical rim (sub 0) vs marrow (sub 1); rim one voxel (1 mm), as thin as the
    # phantom's thickest cortex (it was 2 mm for bodies and sacrum until session 9).
    for c in (S.vertebral_body, S.posterior_elements, S.sacrum):
        m = seg == c
        inner = m & ~_shell(m, 1)
        sub[inner] = 10 * c + 1
    if endplate is not None:
        sub[endplate & (seg == S.vertebral_body)] = 10 * S.vertebral_body + 2
    # Disc: nucleus = eroded core (~40 % of its thickness), annulus rim.
    d = seg == S.intervertebral_disc
    if d.any():
        core = ndi.binary_erosion(d, iterations=2)
        sub[core] = 41
        sub[ndi.binary_erosion(d, iterations=3)] = 42
    m = seg == S.paraspinal_muscle
    if m.any():  # fatty-infiltration blobs inside muscle
        fat = _blobs(seg.shape, 4, rng, 12.0) == 0
        sub[m & fat] = 101
    bg = seg == 0
    blobs = _blobs(seg.shape, n_blobs, rng, 25.0)
    sub[bg] = (_BLOB0 + blobs)[bg]
    lut = base_lut()
    for c in range(1, N_CLASSES):
        if c not in known_classes:
            lut[10 * c : 10 * c + 10] = IGNORE
    if background_ignore_mm > 0:
        spine = seg > 0
        dist = ndi.distance_transform_edt(~spine)
        near = bg & (dist <= background_ignore_mm)
        sub[near] = _UNKNOWN0 + (blobs[near] % 4)
    x = np.nonzero(np.isin(seg, (S.thecal_sac, S.spinal_cord, S.vertebral_body)))[0]
    midline = float(np.median(x)) if x.size else seg.shape[0] / 2
    return LabelSource(sub=sub, lut=lut, name=name, midline_x=midline)


# --------------------------------------------------------------------------- panoptica
# SPINEPS / TPTBox subregion ids (Hendrik-code/spineps README "Labels"; TPTBox
# vert_constants.Location) → contract classes. 60/61 are swapped in panoptica's ref map
# (shared/data/panoptica_lumbar_labels/SOURCE.md note 2), so the caller passes `swap_cord`.
_SPINEPS = {41: 2, 42: 2, 43: 2, 44: 2, 45: 2, 46: 2, 47: 2, 48: 2, 49: 1, 50: 1, 62: 1,
            26: 3, 100: 4, 60: 6, 61: 5}


def _spineps_to_contract(arr: np.ndarray, swap_cord: bool) -> tuple[np.ndarray, np.ndarray]:
    table = dict(_SPINEPS)
    if swap_cord:
        table[60], table[61] = 5, 6
    lut = np.zeros(256, dtype=np.uint8)
    for k, v in table.items():
        lut[k] = v
    return lut[arr.astype(np.uint8)], arr == 62


def panoptica_sources(
    data_dir: Path, rng: np.random.Generator, background_ignore_mm: float
) -> list[LabelSource]:
    """The two real SPINEPS-style lumbar maps (ref with the 60/61 swap undone, pred)."""
    out = []
    for fname, swap in (("ref.nii.gz", True), ("pred.nii.gz", False)):
        path = Path(data_dir) / "panoptica_lumbar_labels" / "semantic" / fname
        if not path.exists():
            continue
        img = nib.load(str(path))
        arr, aff = resample_nearest_iso(np.asanyarray(img.dataobj), img.affine)
        seg, endplate = _spineps_to_contract(arr, swap)
        out.append(
            from_contract_seg(
                seg, name=f"panoptica/{fname}", rng=rng, endplate=endplate,
                background_ignore_mm=background_ignore_mm,
            )
        )
    return out


# --------------------------------------------------------------------------- TotalSegmentator
# TotalSegmentator v2 `total` (CT) and `total_mr` class maps (wasserth/TotalSegmentator
# totalsegmentator/map_to_binary.py, class_map["total"] / ["total_mr"]). Only background
# anatomy, muscles and vessels are trusted; spine labels are coarse (whole vertebra, no
# canal) so the spine and a 6 mm band around it become IGNORE.
_TS_CT_SPINE = set(range(25, 51)) | {79}
_TS_CT_MUSCLE = {86, 87, 88, 89}
_TS_CT_VESSEL = {52, 63, 65, 66, 67, 68}
_TS_MR_SPINE = {18, 19, 20, 21}
_TS_MR_MUSCLE = {46, 47, 48, 49}
_TS_MR_VESSEL = {23, 24, 26, 27, 28, 29}


def _ts_source(arr: np.ndarray, spine: set, muscle: set, vessel: set, name: str) -> LabelSource:
    arr = arr.astype(np.int32)
    sub = np.zeros(arr.shape, dtype=np.uint8)
    organs = [v for v in np.unique(arr) if v and v not in spine | muscle | vessel]
    for i, v in enumerate(organs):  # each organ its own background tissue
        sub[arr == v] = _ORGAN0 + (i % _N_ORGAN_IDS)
    sub[np.isin(arr, list(muscle))] = 100
    sub[np.isin(arr, list(vessel))] = 110
    body = ndi.binary_closing(arr > 0, iterations=3)
    sub[(arr == 0) & body] = _BLOB0 + 1  # unlabelled soft tissue (fat, gut wall)
    sp = np.isin(arr, list(spine))
    band = ndi.binary_dilation(sp, iterations=6)
    sub[band] = _UNKNOWN0
    lut = base_lut()
    x = np.nonzero(sp)[0]
    return LabelSource(sub=sub, lut=lut, name=name,
                       midline_x=float(np.median(x)) if x.size else arr.shape[0] / 2)


def totalseg_sources(data_dir: Path) -> list[LabelSource]:
    """Whole-abdomen TotalSegmentator maps as background anatomy (SynthSeg-style)."""
    out = []
    ct = Path(data_dir) / "totalseg_ct_abdomen" / "example_seg.nii.gz"
    if ct.exists():
        img = nib.load(str(ct))
        arr, _ = resample_nearest_iso(np.asanyarray(img.dataobj), img.affine)
        out.append(_ts_source(arr, _TS_CT_SPINE, _TS_CT_MUSCLE, _TS_CT_VESSEL, "totalseg_ct"))
    mr = Path(data_dir) / "totalseg_mr_abdomen" / "example_seg_mr.nii.gz"
    if mr.exists():
        img = nib.load(str(mr))
        arr, _ = resample_nearest_iso(np.asanyarray(img.dataobj), img.affine)
        out.append(_ts_source(arr, _TS_MR_SPINE, _TS_MR_MUSCLE, _TS_MR_VESSEL, "totalseg_mr"))
    return out


# --------------------------------------------------------------------------- phantom
def _phantom_sub(seg: np.ndarray, tissue: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sub-labels from the phantom's own (class, tissue) pair (spinemetrics.phantom.tissues)."""
    from spinemetrics.phantom import tissues as T

    sub = np.zeros(seg.shape, dtype=np.uint8)
    for c in range(1, N_CLASSES):  # fallback for unusual (class, tissue) combinations
        sub[seg == c] = 10 * c + 5
    table = {
        (1, T.CORTEX): 10, (1, T.MARROW): 11,
        (2, T.PE_BONE): 20, (2, T.PE_MARROW): 21, (2, T.CORTEX): 20,
        (3, T.CORTEX): 30, (3, T.SACRAL_MARROW): 31,
        (4, T.ANNULUS): 40, (4, T.NUCLEUS): 42, (4, T.NUCLEUS_DEGEN): 43,
        (5, T.CSF): 50, (5, T.CAUDA): 55, (6, T.CORD): 60, (7, T.ROOT): 70, (8, T.EPIDURAL_FAT): 80,
        (9, T.LF): 90, (10, T.MUSCLE): 100, (11, T.ARTERY): 110, (11, T.VEIN): 111,
    }
    for (c, t), v in table.items():
        sub[(seg == c) & (tissue == t)] = v
    bg = seg == 0
    blobs = _blobs(seg.shape, 8, rng, 25.0)
    for t in range(T.N_TISSUES):
        m = bg & (tissue == t)
        if not m.any():
            continue
        if t == T.AIR:
            sub[m] = 0
        elif t == T.SOFT:  # visceral / other soft tissue: organ-like random blobs
            sub[m] = (_BLOB0 + 10 + blobs)[m]
        else:
            sub[m] = _BLOB0 + 20 + t
    m = seg == S.paraspinal_muscle
    fat = _blobs(seg.shape, 4, rng, 12.0) == 0
    sub[m & fat & (sub == 100)] = 101
    return sub


@functools.lru_cache(maxsize=1)
def phantom_fingerprint() -> str:
    """Fingerprint of the code that turns a phantom seed into a training label map.

    SHA-256 (first 16 hex digits) of the :mod:`spinemetrics.phantom` sources and of
    :func:`_phantom_sub`, computed once per process (the code that runs is the code that was
    imported). Cached phantoms carry it; a cache written by other phantom code is
    stale. (Until v1.4 the cache had no fingerprint, and the shipped models were trained on
    phantoms rendered by the first phantom version — without the slimmer posterior elements,
    the superior articular processes, rounded endplates or cauda equina strands of the
    phantoms they were tested on; docs/model.md, *v1.4*.)
    """
    import inspect

    import spinemetrics.phantom as ph

    chunks = []
    for f in sorted(Path(ph.__file__).parent.glob("*.py")):
        chunks += [f.name.encode(), f.read_bytes()]
    return _sha16(chunks + [inspect.getsource(_phantom_sub).encode()])


def _sha16(chunks: list[bytes]) -> str:
    """First 16 hex digits of the SHA-256 of ``chunks`` in order (the cache fingerprints)."""
    import hashlib

    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()[:16]


def _cached_phantom(cache: Path, fingerprint: str) -> tuple[np.lib.npyio.NpzFile | None, bool]:
    """``(cached phantom, stale)``: the file at ``cache`` if the current phantom code rendered
    it, else None; ``stale`` is True when a file exists but other code rendered it."""
    if not cache.exists():
        return None, False
    z = np.load(cache)
    if "fingerprint" in z.files and str(z["fingerprint"]) == fingerprint:
        return z, False
    return None, True


def _from_cache(z: np.lib.npyio.NpzFile, seed: int) -> LabelSource:
    return LabelSource(sub=z["sub"], lut=base_lut(), name=f"phantom/{seed}",
                       midline_x=float(z["midline_x"]))


def phantom_source(seed: int, cache_dir: Path | None = None) -> LabelSource:
    """One random phantom (all 11 structures + surrounding tissue) as a label source.

    Results are cached as ``phantom_<seed>.npz`` in ``cache_dir`` with the
    :func:`phantom_fingerprint` of the code that rendered them; a cached file from other
    phantom code is rendered again (a few seconds at 1 mm).
    """
    cache = Path(cache_dir) / f"phantom_{seed}.npz" if cache_dir else None
    fingerprint = phantom_fingerprint()
    z, stale = _cached_phantom(cache, fingerprint) if cache is not None else (None, False)
    if stale:
        log.warning("%s is stale (rendered by other phantom code); rendering it again", cache)
    if z is not None:
        return _from_cache(z, seed)
    from spinemetrics.phantom import make_phantom, random_params

    ph = make_phantom(random_params(seed), spacing=(1.0, 1.0, 1.0), with_image=False)
    seg, _ = resample_nearest_iso(np.asarray(ph.seg.array), ph.seg.affine)
    tissue, _ = resample_nearest_iso(np.asarray(ph.tissue.array), ph.tissue.affine)
    sub = _phantom_sub(seg, tissue, np.random.default_rng(seed))
    x = np.nonzero(np.isin(seg, (S.thecal_sac, S.spinal_cord)))[0]
    midline = float(np.median(x)) if x.size else seg.shape[0] / 2
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, sub=sub, midline_x=midline, fingerprint=fingerprint)
    return LabelSource(sub=sub, lut=base_lut(), name=f"phantom/{seed}", midline_x=midline)


def phantom_sources(
    seeds: list[int], cache_dir: Path | None = None, cached_only: bool = False
) -> list[LabelSource]:
    """Random analytic phantoms (all 11 structures) from :mod:`spinemetrics.phantom`.

    ``cached_only`` skips seeds not yet rendered into ``cache_dir`` by the current phantom
    code (lets training start while a separate process renders the rest; see ``refresh`` in
    :func:`train`)."""
    try:
        import spinemetrics.phantom  # noqa: F401
    except ImportError:
        log.warning("spinemetrics.phantom not available; training without phantoms")
        return []
    if cached_only and cache_dir is not None:
        fp = phantom_fingerprint()
        found = {s: _cached_phantom(Path(cache_dir) / f"phantom_{s}.npz", fp) for s in seeds}
        stale = sorted(s for s, (_, old) in found.items() if old)
        if stale:
            log.warning("%d cached phantom(s) in %s are stale (rendered by other phantom code, "
                        "e.g. seed %d) and are skipped; render them again by running once "
                        "without --cached-only", len(stale), cache_dir, stale[0])
        return [_from_cache(z, s) for s, (z, _) in found.items() if z is not None]
    return [phantom_source(s, cache_dir) for s in seeds]


def _resample_linear_iso(img, spacing_mm: float = 1.0) -> np.ndarray:
    from scipy.ndimage import zoom

    # grid_mode: voxel *areas* are aligned (centre of voxel i at (i + 0.5) * spacing), the
    # convention of resample_nearest_iso for the label map; the default corner-aligned zoom
    # shifts thick slices against their labels by up to ~0.4 of a slice.
    return zoom(np.asarray(img.array, dtype=np.float32),
                np.asarray(img.spacing) / spacing_mm, order=1, grid_mode=True,
                mode="nearest").astype(np.float32)


#: Background this close to the spine is ignored in user pairs that lack some structures.
PARTIAL_PAIR_IGNORE_MM = 30.0


def pair_sources(
    folder: Path, rng: np.random.Generator, label_source: str | None = None
) -> list[LabelSource]:
    """User image/label pairs for fine-tuning: ``X.nii.gz`` + ``X_seg.nii.gz`` (any format
    :func:`spinemetrics.io.read_image` reads; ``_seg``/``_label``/``_labels``/``_msk`` suffix).

    Label maps use contract ids, or a foreign convention converted by
    :mod:`spinemetrics.convert` when ``label_source`` names it (e.g. ``"spineps"``). A map
    that lacks some of the 11 structures (most tools label only bone, discs and canal) has
    its background within :data:`PARTIAL_PAIR_IGNORE_MM` of the spine ignored by the loss:
    there it holds unlabelled muscle, fat, roots or ligament, not true background.
    """
    from spinemetrics.errors import InputError
    from spinemetrics.io import read_image, read_labels

    folder = Path(folder)
    suffixes = ("_seg", "_label", "_labels", "_msk")
    out = []
    for lab_path in sorted(folder.iterdir()):
        name = lab_path.name
        stem = name.split(".")[0]
        suf = next((x for x in suffixes if stem.endswith(x)), None)
        if suf is None:
            continue
        ext = name[len(stem):]
        img_path = folder / (stem[: -len(suf)] + ext)
        if not img_path.exists():
            continue
        img = read_image(img_path)
        lab = read_labels(lab_path)
        if label_source:
            from spinemetrics.convert import convert_labels

            lab = convert_labels(lab, label_source).seg
            if lab is None:
                raise InputError(f"{lab_path.name}: the {label_source} converter gave no "
                                 "structure map; pass the tool's semantic/subregion map")
        if lab.shape != img.shape:
            raise InputError(f"label map {lab_path.name} is not on the grid of {img_path.name}; "
                             "resample it onto the image first")
        arr, _ = resample_nearest_iso(np.asarray(lab.array), lab.affine)
        present = set(np.unique(arr).tolist()) - {0}
        partial = not set(range(1, N_CLASSES)) <= present
        src = from_contract_seg(arr, name=f"pairs/{stem}", rng=rng,
                                background_ignore_mm=PARTIAL_PAIR_IGNORE_MM if partial else 0.0)
        im = _resample_linear_iso(img)
        sl = tuple(slice(0, min(a, b)) for a, b in zip(im.shape, arr.shape, strict=False))
        full = np.zeros(arr.shape, np.float32)
        full[sl] = im[sl]
        src.image = full
        out.append(src)
    if not out:
        raise InputError(f"no image/label pairs found in {folder}; name them X.nii.gz and "
                         "X_seg.nii.gz (or _label/_labels/_msk)")
    return out


@functools.cache
def real_sources_fingerprint() -> str:
    """Fingerprint of the code that turns the real label maps into training sources.

    SHA-256 (first 16 hex digits) of the builders' source text (:func:`panoptica_sources`,
    :func:`totalseg_sources` and what they call). Cached ``panoptica_<seed>.npz`` /
    ``totalseg.npz`` files carry it; one written by other code is rebuilt (until 2026-11-27
    they carried none, so a change of sub-label numbering went unnoticed by old caches).
    """
    import inspect

    builders = (base_lut, _blobs, _shell, resample_nearest_iso, from_contract_seg,
                _spineps_to_contract, panoptica_sources, _ts_source, totalseg_sources)
    return _sha16([inspect.getsource(fn).encode() for fn in builders]
                  + [repr((_BLOB0, _ORGAN0, _N_ORGAN_IDS, _UNKNOWN0, IGNORE)).encode()])


def _cached(cache_dir: Path | None, key: str, build) -> list[LabelSource]:
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / f"{key}.npz"
    fingerprint = real_sources_fingerprint()
    if path.exists():
        z = np.load(path, allow_pickle=False)
        if "fingerprint" in z.files and str(z["fingerprint"]) == fingerprint:
            n = int(z["n"])
            return [LabelSource(sub=z[f"sub{i}"], lut=z[f"lut{i}"], name=str(z[f"name{i}"]),
                                midline_x=float(z[f"mid{i}"])) for i in range(n)]
        log.info("%s was written by other source code: rebuilding it", path)
    out = build()
    if not out:  # nothing found (wrong --data folder): do not cache the absence
        return out
    arrays = {"n": np.asarray(len(out)), "fingerprint": np.asarray(fingerprint)}
    for i, src in enumerate(out):
        arrays.update({f"sub{i}": src.sub, f"lut{i}": src.lut, f"name{i}": np.asarray(src.name),
                       f"mid{i}": np.asarray(src.midline_x)})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return out


def default_sources(
    data_dir: Path,
    *,
    phantom_seeds: list[int] | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    cached_only: bool = False,
) -> list[LabelSource]:
    """All built-in sources: phantoms (if available), panoptica, TotalSegmentator maps."""
    rng = np.random.default_rng(seed)
    ph = phantom_sources(phantom_seeds or [], cache_dir, cached_only)
    # Tissue next to the real spine maps (muscle, fat, roots, ligament) is unlabelled there:
    # mark it unknown rather than teach the network that it is background.
    pan = _cached(cache_dir, f"panoptica_{seed}",
                  lambda: panoptica_sources(data_dir, rng, background_ignore_mm=30.0))
    ts = _cached(cache_dir, "totalseg", lambda: totalseg_sources(data_dir))
    for found, what in ((pan, "panoptica_lumbar_labels/semantic/{ref,pred}.nii.gz"),
                        (ts, "totalseg_*_abdomen/example_seg*.nii.gz")):
        if not found:
            log.warning("no real label maps %s under %s: training without them; pass the "
                        "shared data folder as --data", what, data_dir)
    return ph + pan + ts
