"""Inference: one image in, the 11-structure map and the level map out, on the input grid.

Steps (see docs/model.md): the image is already RAS+ (``Image`` convention), so sagittal
slices are ``array[i]``. Each slice is resampled in-plane to the model's 1 mm grid, the
volume is normalised by percentiles, every slice is predicted with its two neighbours
(about 3.5 mm away) as context channels, the class probabilities are interpolated back to
the input's in-plane grid and arg-maxed, then small spurious parts are removed. Levels are
named by :func:`spinemetrics.levels.derive_levels`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from spinemetrics.errors import ImageGeometryError, InputError, ModelError
from spinemetrics.image import Image
from spinemetrics.labels import Structure
from spinemetrics.segment.model import load_weights, resolve_device
from spinemetrics.segment.synth import normalize_percentile

__all__ = [
    "SegmentationResult",
    "segment",
    "predict_labels",
    "finish_segmentation",
    "load_model",
    "predict_probabilities",
    "iter_slice_probabilities",
    "class_prior_scale",
    "apply_conus_prior",
    "postprocess",
    "DEFAULT_WEIGHTS",
    "MIN_INPLANE_PX",
    "MAX_VOXELS",
]

log = logging.getLogger(__name__)

#: Shipped weights (fp16 state dict + config + training metadata).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "unet2p5d.pt"
#: Smaller in-plane images cannot hold a lumbar spine at any useful resolution.
MIN_INPLANE_PX = 32
#: Above this many voxels a single scan is refused (memory); crop or downsample first.
MAX_VOXELS = 400_000_000
_HUGE_VOXELS = 60_000_000

# Smallest part kept per structure (mm³); fragments below are CNN noise.
_MIN_PART_MM3 = {
    Structure.vertebral_body: 400.0,
    Structure.posterior_elements: 60.0,
    Structure.sacrum: 1000.0,
    Structure.intervertebral_disc: 150.0,
    Structure.thecal_sac: 200.0,
    Structure.spinal_cord: 100.0,
    Structure.nerve_root: 10.0,
    Structure.epidural_fat: 10.0,
    Structure.ligamentum_flavum: 10.0,
    Structure.paraspinal_muscle: 500.0,
    Structure.vessel: 300.0,
}
# Parts smaller than this fraction of the median part are dropped (bodies, discs).
_RELATIVE_MIN = {Structure.vertebral_body: 0.2, Structure.intervertebral_disc: 0.1}
# Structures that are one connected object in the lumbar field of view.
_SINGLE_PART = (Structure.sacrum, Structure.thecal_sac)


@dataclass
class SegmentationResult:
    """Output of :func:`segment`.

    Attributes
    ----------
    seg : Image
        Contract §2 label map (uint8) on the grid of the input image.
    levels : Image
        Contract §3 level map (uint16) on the same grid.
    warnings : list of str
        One line each: input problems, partial field of view, empty/uncertain output.
    qc : dict
        Level name → ``"ok"`` or reasons (from :func:`spinemetrics.levels.derive_levels`).
    """

    seg: Image
    levels: Image
    warnings: list[str] = field(default_factory=list)
    qc: dict[str, str] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, device: str) -> tuple[torch.nn.Module, dict, dict]:
    return load_weights(path, device=device)


def load_model(
    device: str = "auto", path: str | Path | None = None
) -> tuple[torch.nn.Module, dict, dict]:
    """Load the segmentation network once per process (cached).

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
    path : path, optional
        Weight file; default the shipped :data:`DEFAULT_WEIGHTS`.

    Returns
    -------
    (network, config, meta)
    """
    dev = resolve_device(device)
    return _cached_model(str(Path(path) if path else DEFAULT_WEIGHTS), str(dev))


def _check_input(img: Image) -> list[str]:
    warnings: list[str] = []
    # The acquisition plane is spanned by the two largest array axes (sagittal or not).
    a, b = sorted(img.shape)[1:]
    name = Path(str(img.meta.get("source_path", "image"))).name
    if min(a, b) < MIN_INPLANE_PX:
        raise ImageGeometryError(
            f"{name} has only {a}x{b} voxels in its acquisition plane (minimum "
            f"{MIN_INPLANE_PX}); pass the full series, not a crop, thumbnail or single line"
        )
    n = int(np.prod(img.shape))
    if n > MAX_VOXELS:
        raise InputError(
            f"{name} has {n / 1e6:.0f} M voxels (limit {MAX_VOXELS / 1e6:.0f} M); crop it to the "
            "lumbar spine or downsample it first"
        )
    if n > _HUGE_VOXELS:
        warnings.append(f"{name} is very large ({n / 1e6:.0f} M voxels); segmentation will be slow")
    if not np.isfinite(np.asarray(img.array, dtype=np.float32)).all():
        raise InputError(f"{name} contains NaN or infinite intensities; fix or mask them first")
    if np.ptp(np.asarray(img.array)) == 0:
        raise InputError(f"{name} is constant (all voxels equal); it holds no image")
    try:
        from spinemetrics.io import check_mr_sagittal

        warnings += check_mr_sagittal(img)
    except ImportError:  # pragma: no cover - io is part of the package
        pass
    return warnings


def _context_offset(spacing_x: float, context_mm: float) -> int:
    return max(1, int(np.floor(context_mm / max(spacing_x, 1e-3) + 0.5)))


def _centred_box(vol: np.ndarray, k: int) -> np.ndarray:
    """Mean over ``k`` slices along axis 0, centred on each slice.

    An even ``uniform_filter1d`` window is off centre by half a slice (k = 4 on 1 mm
    slices: [i-2, i+1]), which moved every thin-slice prediction 0.5-0.75 mm sideways;
    for even ``k`` the two half-shifted windows are averaged (weights 1/2k at both ends)."""
    out = ndi.uniform_filter1d(vol, size=k, axis=0, mode="nearest")
    if k % 2 == 0:
        out += ndi.uniform_filter1d(vol, size=k, axis=0, mode="nearest", origin=-1)
        out *= 0.5
    return out


def iter_slice_probabilities(
    img: Image,
    net: torch.nn.Module,
    config: dict[str, Any],
    device: torch.device | str = "cpu",
    batch_slices: int = 4,
    mirror: bool | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(slice indices, class probabilities)`` on the input in-plane grid.

    Probabilities are ``(b, classes, ny, nz)`` float tensors, one batch of sagittal slices
    at a time so memory stays bounded by a few slices. Test-time augmentation follows the
    weight file's config: ``tta_inplane_spacings_mm`` (e.g. ``[0.9, 1.0, 1.1]``) averages
    the predictions made on several in-plane working grids (default: the single
    ``inplane_spacing_mm``), and ``tta_mirror`` (default True; the ``mirror`` argument
    overrides it) also averages the prediction from the left-right mirrored context
    (channel order reversed). No class-prior correction here (see
    :func:`predict_probabilities`).
    """
    device = torch.device(device)
    arr = torch.from_numpy(np.ascontiguousarray(img.array, dtype=np.float32))
    if device.type == "cuda":
        # Resample and normalise on the GPU too: on a GPU host this CPU work was the main
        # process's largest cost, and batch workers compete with it for the cores. (CUDA
        # only: antialiased resampling and quantiles are not on every other backend.)
        arr = arr.to(device)
    nx, ny, nz = arr.shape
    sx, sy, sz = img.spacing
    spacings = config.get("tta_inplane_spacings_mm") or [config.get("inplane_spacing_mm", 1.0)]
    if mirror is None:
        mirror = bool(config.get("tta_mirror", True))
    k = _context_offset(sx, float(config.get("context_spacing_mm", 3.5)))
    grids = []
    for res in (float(r) for r in spacings):
        ty, tz = max(8, int(round(ny * sy / res))), max(8, int(round(nz * sz / res)))
        # In-plane resampling of all slices (x acts as the batch axis).
        vol = F.interpolate(arr[:, None], size=(ty, tz), mode="bilinear", align_corners=False,
                            antialias=(ty < ny or tz < nz))[:, 0]
        if k > 1:  # thin slices: average over ~k slices, like the thick slices of training
            vol = torch.from_numpy(_centred_box(vol.cpu().numpy(), k)).to(vol.device)
        grids.append((normalize_percentile(vol), ty, tz))
    n_ctx = int(config.get("in_channels", 3))
    offs = (np.arange(n_ctx) - n_ctx // 2) * k
    with torch.inference_mode():
        for start in range(0, nx, batch_slices):
            idx = np.arange(start, min(nx, start + batch_slices))
            ch = torch.from_numpy(np.clip(idx[:, None] + offs[None, :], 0, nx - 1)).to(arr.device)
            total = None
            for vol, ty, tz in grids:
                x = F.pad(vol[ch], (0, (-tz) % 16, 0, (-ty) % 16), mode="replicate").to(device)
                prob = net(x)[:, :, :ty, :tz].float().softmax(1)
                if mirror and n_ctx > 1:
                    prob = 0.5 * (prob + net(x.flip(1))[:, :, :ty, :tz].float().softmax(1))
                if total is not None and prob.shape[2:] != total.shape[2:]:
                    # average on the first working grid, then one upsampling to the input
                    # grid: 12-channel upsampling to 512² per grid cost more than the network
                    prob = F.interpolate(prob, size=total.shape[2:], mode="bilinear",
                                         align_corners=False)
                total = prob if total is None else total + prob
            yield idx, F.interpolate(total / len(grids), size=(ny, nz), mode="bilinear",
                                     align_corners=False)


def class_prior_scale(config: dict[str, Any], n_classes: int) -> torch.Tensor | None:
    """Per-class factors applied to the probabilities before the arg-max, or None.

    Training with class-weighted cross-entropy inflates the weighted classes' posteriors
    (roughly by their weight); ``config["class_log_scale"]``, fitted on held-out synthetic
    scans by :func:`spinemetrics.segment.calibrate.fit_class_log_scale`, undoes that.
    """
    log_scale = config.get("class_log_scale")
    if log_scale is None:
        return None
    v = torch.as_tensor(np.asarray(log_scale, dtype=np.float32))
    if v.numel() != n_classes or not torch.isfinite(v).all():
        raise ModelError(f"weight file has a class_log_scale of {v.numel()} values for "
                         f"{n_classes} classes; re-run the calibration or remove the key")
    return v.exp()[None, :, None, None]


def predict_probabilities(
    img: Image,
    net: torch.nn.Module,
    config: dict[str, Any],
    device: torch.device | str = "cpu",
    batch_slices: int = 4,
    mirror: bool | None = None,
) -> np.ndarray:
    """Class map on the input grid by slice-wise 2.5D prediction.

    Returns the arg-max labels (uint8, shape of ``img``); probabilities are interpolated
    back to the input in-plane grid (:func:`iter_slice_probabilities`), multiplied by the
    weight file's per-class prior correction (:func:`class_prior_scale`) when it has one,
    then arg-maxed.
    """
    out = np.zeros(img.shape, dtype=np.uint8)
    scale = None
    for idx, prob in iter_slice_probabilities(img, net, config, device, batch_slices, mirror):
        if scale is None:
            scale = class_prior_scale(config, prob.shape[1])
            scale = torch.ones(1) if scale is None else scale.to(prob.device)
        out[idx] = _argmax_classes(prob * scale).cpu().numpy()
    return out


def _argmax_classes(prob: torch.Tensor) -> torch.Tensor:
    """``prob.argmax(1)`` as uint8 (first maximum wins), by a loop over the few classes:
    torch's reduction over the strided class axis was 3–4× slower on 512² slices."""
    best = prob[:, 0].clone()
    idx = torch.zeros(best.shape, dtype=torch.uint8, device=prob.device)
    for c in range(1, prob.shape[1]):
        better = prob[:, c] > best
        best = torch.where(better, prob[:, c], best)
        idx[better] = c
    return idx


def _boxes_touch_si_border(boxes: list, z0: int, nz: int, margin: int = 0) -> np.ndarray:
    """Per bounding box (``find_objects`` slices of a crop starting at slice ``z0`` along S
    of a RAS volume with ``nz`` such slices; None for absent labels): does it reach within
    ``margin`` slices of the image's inferior or superior face?"""
    return np.array([sl is not None and (z0 + sl[2].start <= margin
                                         or z0 + sl[2].stop >= nz - margin)
                     for sl in boxes], dtype=bool)


def _touches_si_border(cc: np.ndarray, n: int, z0: int, nz: int,
                       margin: int = 0) -> np.ndarray:
    """:func:`_boxes_touch_si_border` for the components 1..n of ``cc``."""
    return _boxes_touch_si_border(ndi.find_objects(cc, n), z0, nz, margin)


def _label_lookup(ids: np.ndarray, n: int) -> np.ndarray:
    """Boolean table over component ids 0..n, True at ``ids`` (``table[cc]`` = ``isin``)."""
    table = np.zeros(n + 1, bool)
    table[ids] = True
    return table


#: Bony parts and discs lie next to the spinal canal; parts farther than this are dropped.
MAX_CANAL_DISTANCE_MM = 25.0
_NEAR_CANAL = (Structure.vertebral_body, Structure.posterior_elements, Structure.sacrum,
               Structure.intervertebral_disc)


def _canal_in(out: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Canal (thecal sac or cord) mask of ``out[box]``."""
    region = out[box]
    return (region == Structure.thecal_sac) | (region == Structure.spinal_cord)


@dataclass
class _Parts:
    """The connected parts of every structure, from one labelling pass of the class map.

    Parts are 6-connected regions of one class (what ``ndi.label(map == s)`` gives per
    structure). One pass over the map replaces eleven: on a 56 × 441 × 597 scan, 0.44 s
    instead of 1.7 s. Removing a part leaves the others unchanged, so the table stays valid
    through the post-processing steps.
    """

    comp: np.ndarray  # part id per voxel, 0 = background
    cls: np.ndarray  # class of each part id
    sizes: np.ndarray  # voxels of each part id
    boxes: list  # bounding box of each part (index id - 1)
    alive: np.ndarray  # part id still in the map

    @classmethod
    def of(cls, out: np.ndarray) -> _Parts:
        from skimage.measure import label

        comp, n = label(out, background=0, connectivity=1, return_num=True)
        comp = comp.astype(np.int32, copy=False) if n < 2**31 - 1 else comp
        flat = comp.ravel()
        classes = np.zeros(n + 1, out.dtype)
        classes[flat] = out.ravel()
        alive = np.ones(n + 1, bool)
        alive[0] = False
        return cls(comp, classes, np.bincount(flat, minlength=n + 1), ndi.find_objects(comp),
                   alive)

    def ids(self, s: int) -> np.ndarray:
        """Ids of the parts of structure ``s`` still in the map (in labelling order)."""
        return np.flatnonzero((self.cls == int(s)) & self.alive)

    def class_box(self, *labels: int) -> tuple[slice, ...] | None:
        """Bounding box of every part ever labelled with one of ``labels`` (None if none)."""
        got = [self.boxes[i - 1] for i in np.flatnonzero(np.isin(self.cls, labels))
               if i > 0 and self.boxes[i - 1] is not None]
        if not got:
            return None
        return tuple(slice(min(b[d].start for b in got), max(b[d].stop for b in got))
                     for d in range(len(got[0])))

    def voxels(self, i: int) -> np.ndarray:
        """(N, 3) array indices of part ``i``."""
        box = self.boxes[i - 1]
        return np.argwhere(self.comp[box] == i) + [b.start for b in box]

    def remove(self, out: np.ndarray, ids: np.ndarray) -> None:
        """Set the voxels of parts ``ids`` to background (each inside its own box; with many
        parts, e.g. thousands of specks on a noisy scan, one pass over the map instead)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) > 256:
            out[_label_lookup(ids, len(self.cls) - 1)[self.comp]] = 0
        else:
            for i in ids:
                box = self.boxes[i - 1]
                out[box][self.comp[box] == i] = 0
        self.alive[ids] = False


def _drop_far_from_canal(out: np.ndarray, spacing: tuple[float, float, float],
                         notes: list[str], parts: _Parts | None = None) -> None:
    """Remove body / posterior-element / sacrum / disc parts that never come near the canal.

    The classic synthetic-training error is bowel or pelvis called "vertebral body"
    (SEGMENTATION_NOTES §1); real vertebrae and discs always touch the canal's surroundings.
    """
    parts = _Parts.of(out) if parts is None else parts
    cbox = parts.class_box(Structure.thecal_sac, Structure.spinal_cord)
    if cbox is None:
        return
    canal = _canal_in(out, cbox)
    if canal.sum() * float(np.prod(spacing)) < 2000.0:  # no trustworthy canal: keep all
        return
    cc, n = ndi.label(canal)
    main = int(np.argmax(np.bincount(cc.ravel())[1:])) + 1
    canal = cc == main
    # Distances only inside the canal's bounding box grown by the limit: beyond it every
    # voxel is farther than the limit along one axis (same result, ~4× less work).
    cb = ndi.find_objects(cc, main)[main - 1]
    c_lo = np.array([b.start + c.start for b, c in zip(cbox, cb, strict=True)])
    c_hi = np.array([b.start + c.stop for b, c in zip(cbox, cb, strict=True)])
    grow = np.ceil(MAX_CANAL_DISTANCE_MM / np.asarray(spacing)).astype(int) + 1
    lo, hi = np.maximum(c_lo - grow, 0), np.minimum(c_hi + grow, out.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    canal_in_box = np.zeros(hi - lo, bool)
    canal_in_box[tuple(slice(a - b, a - b + (c.stop - c.start))
                       for a, b, c in zip(c_lo, lo, cb, strict=True))] = canal[cb]
    near = ndi.distance_transform_edt(~canal_in_box, sampling=spacing) <= MAX_CANAL_DISTANCE_MM
    close = np.unique(parts.comp[box][near])  # parts with at least one voxel near
    for s in _NEAR_CANAL:
        ids = parts.ids(s)
        far = ids[~np.isin(ids, close)]
        if far.size:
            parts.remove(out, far)
            notes.append(f"{s.name}: removed {far.size} part(s) far from the spinal canal")


def _trim_sacrum_above_lumbosacral_disc(
    out: np.ndarray, spacing: tuple[float, float, float], notes: list[str],
    parts: _Parts | None = None,
) -> None:
    """Relabel "sacrum" voxels cranial to the lowest disc (L5-S1) as vertebra parts.

    The network sometimes calls the lowest lumbar facets/laminae "sacrum"; such voxels sit
    above the lumbosacral disc plane and would make level naming (anchored at the top of the
    sacrum) skip L5. Voxels behind the canal become posterior elements, others background.
    """
    parts = _Parts.of(out) if parts is None else parts
    sbox = parts.class_box(Structure.sacrum)
    if sbox is None:
        return
    sac = out[sbox] == int(Structure.sacrum)
    if not sac.any():
        return
    sp = np.asarray(spacing)
    ids = parts.ids(Structure.intervertebral_disc)
    ok = ids[parts.sizes[ids] * float(np.prod(sp)) >= _MIN_PART_MM3[Structure.intervertebral_disc]]
    if ok.size == 0:
        return
    disc_voxels = [parts.voxels(i) for i in ok]
    low = int(np.argmin([v[:, 2].mean() for v in disc_voxels]))  # most inferior (world z)
    pts = disc_voxels[low] * sp
    centre = pts.mean(0)
    # Disc plane normal = direction of least spread; oriented cranially (+z).
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    normal = vt[-1] if vt[-1][2] >= 0 else -vt[-1]
    sac_idx = np.argwhere(sac) + [b.start for b in sbox]
    height = (sac_idx * sp - centre) @ normal
    above = height > 3.0
    if not above.any():
        return
    cbox = parts.class_box(Structure.thecal_sac, Structure.spinal_cord)
    canal = _canal_in(out, cbox) if cbox is not None else np.zeros(0, bool)
    canal_y = (float(np.nonzero(canal)[1].mean()) + cbox[1].start if canal.any()
               else np.inf)
    idx = sac_idx[above]
    # Behind the canal: facets/laminae → posterior elements. In front: background, not
    # body (a new body fragment would be counted as an extra vertebra).
    new = np.where(idx[:, 1] < canal_y, int(Structure.posterior_elements), 0)
    out[idx[:, 0], idx[:, 1], idx[:, 2]] = new
    notes.append(f"sacrum: relabelled {len(idx)} voxel(s) above the lumbosacral disc")


def _separate_bodies(out: np.ndarray, spacing: tuple[float, float, float],
                     notes: list[str], parts: _Parts | None = None) -> None:
    """Cut vertebral bodies that touch each other (through lateral slices) at a disc seam.

    Discs are clearest near the midline; off-midline slices with partial-volumed discs often
    bridge neighbouring bodies, so 3D connectivity would merge several vertebrae and level
    naming would miscount. Seeds = bodies in a ±6 mm mid-sagittal slab, eroded in-plane;
    every body voxel joins its nearest seed; voxels where two bodies meet become disc.
    """
    parts = _Parts.of(out) if parts is None else parts
    bbox = parts.class_box(Structure.vertebral_body)
    if bbox is None:
        return
    body_in = out[bbox] == int(Structure.vertebral_body)
    if not body_in.any():
        return
    # Work inside the bodies' tight box: every step below only sees body voxels.
    tight = ndi.find_objects(body_in.astype(np.int8))[0]
    bb = tuple(slice(o.start + t.start, o.start + t.stop)
               for o, t in zip(bbox, tight, strict=True))
    body = body_in[tight]
    sx, sy, sz = spacing
    cbox = parts.class_box(Structure.thecal_sac, Structure.spinal_cord)
    canal = _canal_in(out, cbox) if cbox is not None else np.zeros(0, bool)
    xs = (np.nonzero(canal)[0] + cbox[0].start if canal.any()
          else np.nonzero(body)[0] + bb[0].start)
    x_mid = int(np.median(xs))
    half = max(1, int(round(6.0 / sx)))
    lo, hi = max(0, x_mid - half - bb[0].start), max(0, x_mid + half + 1 - bb[0].start)
    core = np.zeros_like(body)
    core[lo:hi] = body[lo:hi]
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndi.generate_binary_structure(2, 1)  # in-plane only
    erode = max(1, int(round(1.5 / min(sy, sz))))
    core = ndi.binary_erosion(core, st, iterations=erode)
    seeds, n = ndi.label(core)
    if n < 2:
        return
    sizes = np.bincount(seeds.ravel())[1:]
    big = np.sort(sizes)[-max(3, n // 2):]
    # A small seed is a speck, unless the image's top or bottom face cuts its body (as in
    # postprocess): without its own seed a cut vertebra would join its neighbour.
    cut = _touches_si_border(seeds, n, bb[2].start, out.shape[2], margin=erode)
    small = np.flatnonzero((sizes < 0.2 * np.median(big)) & ~cut) + 1
    if small.size:
        seeds[_label_lookup(small, n)[seeds]] = 0
    if len(np.unique(seeds)) < 3:  # background + at least two bodies
        return
    sd, bd = seeds, body
    _, inds = ndi.distance_transform_edt(sd == 0, sampling=spacing, return_indices=True)
    inst = np.where(bd, sd[tuple(inds)], 0)
    seam = np.zeros_like(bd)
    for ax in range(3):
        a = np.moveaxis(inst, ax, 0)
        diff = (a[:-1] != a[1:]) & (a[:-1] > 0) & (a[1:] > 0)
        np.moveaxis(seam, ax, 0)[1:] |= diff
    if seam.any():
        region = out[bb]
        region[seam] = int(Structure.intervertebral_disc)
        # Seams can cut off slivers; they are not vertebrae.
        lab, n = ndi.label(region == int(Structure.vertebral_body))
        vol = np.bincount(lab.ravel())[1:] * float(np.prod(spacing))
        tiny = np.flatnonzero(vol < _MIN_PART_MM3[Structure.vertebral_body]) + 1
        if tiny.size:
            region[_label_lookup(tiny, n)[lab]] = 0
        notes.append(f"vertebral_body: {int(seam.sum())} seam voxel(s) between touching bodies")


def postprocess(
    labels: np.ndarray, voxel_mm3: float, spacing: tuple[float, float, float] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Drop fragments below per-structure minimum sizes; keep one part of single-part structures;
    with ``spacing`` also drop bony/disc parts far from the spinal canal.

    Removed voxels become background. Returns the cleaned map and notes (one per change).
    """
    out = labels.copy()
    notes: list[str] = []
    parts = _Parts.of(out)
    nz = out.shape[2]
    for s, min_mm3 in _MIN_PART_MM3.items():
        ids = parts.ids(s)
        if not ids.size:
            continue
        sizes = parts.sizes[ids] * voxel_mm3
        keep = sizes >= min_mm3
        if s in _RELATIVE_MIN and keep.sum() >= 3:
            # A real body/disc is not a tiny fraction of its neighbours; such specks would
            # pose as extra levels. Reference = median of the larger half, so many specks
            # cannot drag it down. Parts cut by the top or bottom of the field of view are
            # exempt: a vertebra half outside the image is real (it is named and flagged
            # partial_fov); on the real T2 re-sliced at 4.5 mm the top body (T11, 7 cm³ in
            # view) was dropped here although the 1 mm scan kept it.
            big = np.sort(sizes[keep])[-max(3, int(keep.sum()) // 2):]
            cut = _boxes_touch_si_border([parts.boxes[i - 1] for i in ids], 0, nz)
            keep &= (sizes >= _RELATIVE_MIN[s] * np.median(big)) | cut
        if s in _SINGLE_PART:
            keep = sizes >= max(min_mm3, 0.2 * sizes.max())
        if not keep.all():
            parts.remove(out, ids[~keep])
            notes.append(f"{s.name}: removed {int((~keep).sum())} fragment(s)")
    if spacing is not None:
        _drop_far_from_canal(out, spacing, notes, parts)
        _trim_sacrum_above_lumbosacral_disc(out, spacing, notes, parts)
        # The sacrum trim relabels voxels, so parts are no longer one class each; the body
        # separation only needs class boxes, and those still enclose every voxel they did.
        _separate_bodies(out, spacing, notes, parts)
    return out, notes


#: Lowest normal conus position: the L2-L3 disc. The conus normally ends at L1–L2; below
#: L2-L3 it is "low-lying" (e.g. a tethered cord, rare). A cord label below it is far more
#: often cauda equina roots labelled as cord, which this model does on real T2 scans.
CONUS_LOWEST_DISC = "L2-L3"
#: Cord volume below the reference disc that earns a warning (smaller: a log note).
LOW_CORD_WARN_MM3 = 100.0


def apply_conus_prior(
    seg: np.ndarray, levels: np.ndarray, affine: np.ndarray, *, relabel: bool = True
) -> tuple[np.ndarray, str | None, float]:
    """Cord voxels below the L2-L3 disc → thecal sac (cauda equina), with a message.

    The cord voxels are compared along world S with the centroid of the L2-L3 disc
    (contract ids, RAS+ arrays). With ``relabel=False`` nothing changes and only the
    message is returned (use it when a low-lying conus is what you study). Returns the
    (possibly relabelled) map, a one-line message (None when the cord stays above the disc
    or the disc is not named) and the cord volume below the disc in mm³.
    """
    from spinemetrics.labels import level_id, level_name

    cord = np.argwhere(seg == Structure.spinal_cord)
    disc = np.argwhere(levels == level_id(CONUS_LOWEST_DISC))
    if len(cord) == 0 or len(disc) == 0:
        return seg, None, 0.0

    def world_s(idx: np.ndarray) -> np.ndarray:
        return idx @ affine[2, :3] + affine[2, 3]

    ref = float(world_s(disc).mean())
    cord_s = world_s(cord)
    low = cord[cord_s < ref]
    if len(low) == 0:
        return seg, None, 0.0
    tip = float(cord_s.min())
    ids = np.unique(levels[levels > 0])
    # World S of each level's centroid, all levels in one pass (S is linear in the index).
    flat = np.flatnonzero(levels)
    lv = levels.ravel()[flat]
    s_all = world_s(np.stack(np.unravel_index(flat, levels.shape), 1))
    centres = np.bincount(lv, weights=s_all)[ids] / np.bincount(lv)[ids]
    reach = level_name(int(ids[np.argmin(np.abs(centres - tip))]))
    mm3 = len(low) * float(abs(np.linalg.det(affine[:3, :3])))
    if relabel:
        seg = seg.copy()
        seg[tuple(low.T)] = Structure.thecal_sac
        msg = (f"spinal_cord label reached {reach}, below {CONUS_LOWEST_DISC}: {mm3:.0f} mm³ "
               "relabelled as thecal_sac (cauda equina); keep them with --keep-low-cord / "
               "segment(conus_prior=False) when studying a low-lying conus")
    else:
        msg = (f"spinal_cord label reaches {reach}, below {CONUS_LOWEST_DISC} ({mm3:.0f} mm³ "
               "below it): a low-lying conus or cauda equina roots labelled as cord — check "
               "the cord mask before using cord measures")
    return seg, msg, mm3


def segment(
    image: Image,
    *,
    device: str = "auto",
    model: str | Path | tuple | None = None,
    threads: int | None = None,
    derive_level_map: bool = True,
    conus_prior: bool = True,
) -> SegmentationResult:
    """Segment the 11 lumbar structures of a sagittal MR image and name the levels.

    Parameters
    ----------
    image : Image
        Input MR image (RAS+ as returned by :func:`spinemetrics.io.read_image`; other
        orientations are reoriented first).
    device : {"auto", "cpu", "cuda"}
    model : path or (network, config, meta), optional
        Weight file or a loaded model; default the shipped weights.
    threads : int, optional
        Torch intra-op threads for this call (default: leave torch's setting), and threads
        of level naming (default: torch's thread count).
    derive_level_map : bool
        Name vertebrae and discs (contract §3); if False ``levels`` is all zero.
    conus_prior : bool
        Relabel cord voxels below the L2-L3 disc as thecal sac (cauda equina; see
        :func:`apply_conus_prior`), with a warning. False keeps them and only warns.

    Returns
    -------
    SegmentationResult
        ``seg`` and ``levels`` on the input grid, and warnings (never silently empty).

    Raises
    ------
    ImageGeometryError, InputError
        Image too small, too large, constant or non-finite.
    ModelError
        Weights missing/corrupt or an unavailable device requested.
    """
    raw, warnings = predict_labels(image, device=device, model=model, threads=threads)
    return finish_segmentation(raw, warnings, derive_level_map=derive_level_map,
                               conus_prior=conus_prior,
                               threads=int(threads or torch.get_num_threads()))


def predict_labels(
    image: Image,
    *,
    device: str = "auto",
    model: str | Path | tuple | None = None,
    threads: int | None = None,
) -> tuple[Image, list[str]]:
    """The network stage of :func:`segment`: input checks and the raw class map.

    Returns the arg-max class map (uint8, before post-processing) as a RAS+ ``Image`` with
    the input's affine and meta, and the input warnings. Batch work runs this on the GPU
    while other processes run :func:`finish_segmentation` on earlier scans
    (:mod:`spinemetrics.segment.batch`).
    """
    img = image if image.orientation == ("R", "A", "S") else image.to_canonical()
    warnings = list(dict.fromkeys(list(img.meta.get("warnings", [])) + _check_input(img)))
    if isinstance(model, tuple):
        net, cfg, _ = model
        dev = next(net.parameters()).device
    else:
        net, cfg, _ = load_model(device, model)
        dev = resolve_device(device)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        labels = predict_probabilities(img, net, cfg, dev)
    finally:
        if threads:
            torch.set_num_threads(old_threads)
    return img.with_array(labels, kind="seg"), warnings


def finish_segmentation(
    raw: Image,
    warnings: list[str] | None = None,
    *,
    derive_level_map: bool = True,
    conus_prior: bool = True,
    threads: int = 1,
) -> SegmentationResult:
    """The CPU stage of :func:`segment`: post-processing, level naming and the conus prior.

    Parameters
    ----------
    raw : Image
        RAS+ class map straight from the network (:func:`predict_labels`), with the input
        image's affine and meta.
    warnings : list of str, optional
        Warnings so far (input checks); the stage appends its own.
    derive_level_map, conus_prior : bool
        As in :func:`segment`.
    threads : int
        Threads for the independent passes of level naming (scipy's labelling releases
        the GIL); outputs do not depend on it. Batch workers keep 1.
    """
    img = raw
    warnings = list(warnings or [])
    labels = np.asarray(raw.array)
    labels, notes = postprocess(labels, img.voxel_volume_mm3, img.spacing)
    for n in notes:
        log.info(n)
    name = Path(str(img.meta.get("source_path", "image"))).name
    present = set(np.unique(labels).tolist())
    if not present - {0}:
        warnings.append(f"{name}: the segmentation is empty (no structure found); check that "
                        "this is a sagittal lumbar MR image")
    elif not present & {int(Structure.vertebral_body), int(Structure.sacrum)}:
        warnings.append(f"{name}: no vertebral body or sacrum found; levels cannot be named — "
                        "check that the lumbar spine is in the field of view")
    seg = img.with_array(labels.astype(np.uint8), kind="seg")
    levels_arr = np.zeros(img.shape, dtype=np.uint16)
    qc: dict[str, str] = {}
    if derive_level_map and present & {int(Structure.vertebral_body), int(Structure.sacrum)}:
        from spinemetrics.levels import derive_levels

        try:
            lv = derive_levels(seg, threads=threads)
            levels_arr = np.asarray(lv.levels.array).astype(np.uint16)
            warnings += [w for w in lv.warnings if w not in warnings]
            qc = dict(lv.qc)
            labels, low, low_mm3 = apply_conus_prior(labels, levels_arr, img.affine,
                                                     relabel=conus_prior)
            if low and (not conus_prior or low_mm3 >= LOW_CORD_WARN_MM3):
                warnings.append(f"{name}: {low}")
            elif low:
                log.info(low)
            if low and conus_prior:
                seg = img.with_array(labels.astype(np.uint8), kind="seg")
            reasons = {k: set(str(v).split(";")) for k, v in qc.items()}
            cut = [k for k, r in reasons.items() if "partial_fov" in r]
            cut_lr = [k for k, r in reasons.items() if "partial_fov_lr" in r and k not in cut]
            if cut:
                warnings.append(f"{name}: partial field of view, {', '.join(cut)} cut by the "
                                "image border (their measures are NaN, qc partial_fov)")
            if cut_lr:
                warnings.append(f"{name}: {', '.join(cut_lr)} cut only on the left/right sides "
                                "(mid-sagittal measures kept; volumes, foramina and cut muscle "
                                "areas NaN; qc partial_fov_lr)")
        except InputError as exc:
            warnings.append(f"{name}: levels could not be named ({exc})")
    seg.meta["warnings"] = warnings
    levels = img.with_array(levels_arr, kind="levels")
    levels.meta["warnings"] = warnings
    return SegmentationResult(seg=seg, levels=levels, warnings=warnings, qc=qc)


def available_threads() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
