"""Inference: packaged model, grids, warnings and errors, known-answer Dice on a phantom."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from spinemetrics.errors import ImageGeometryError, InputError, ModelError
from spinemetrics.image import Image
from spinemetrics.labels import Structure
from spinemetrics.segment import DEFAULT_WEIGHTS, load_model, segment
from spinemetrics.segment.inference import postprocess


class _Constant(torch.nn.Module):
    """Stub network that always predicts one class (for the empty-output path)."""

    def __init__(self, cls: int = 0) -> None:
        super().__init__()
        self.cls = cls
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 12, *x.shape[2:])
        out[:, self.cls] = 10.0
        return out


def _stub(cls: int = 0):
    return (_Constant(cls), {"in_channels": 3, "inplane_spacing_mm": 1.0,
                             "context_spacing_mm": 3.5}, {})


def test_weights_ship_with_package_and_are_small():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size <= 16 * 1024 * 1024
    net, cfg, meta = load_model("cpu")
    assert cfg["out_channels"] == 12 and cfg["in_channels"] == 3
    assert not net.training
    assert meta["steps"] > 0
    # Cached: a second call returns the very same object.
    assert load_model("cpu")[0] is net


def test_traced_network_matches_the_monai_network_exactly(tmp_path):
    """The shipped file's TorchScript network (what inference loads) is the MONAI network:
    same outputs bit for bit, on shapes other than the one it was traced with."""
    from spinemetrics.segment.model import load_weights

    traced, _, _ = load_weights(DEFAULT_WEIGHTS)
    monai_net, _, _ = load_weights(DEFAULT_WEIGHTS, trainable=True)
    assert isinstance(traced, torch.jit.ScriptModule)
    assert not isinstance(monai_net, torch.jit.ScriptModule)
    gen = torch.Generator().manual_seed(0)
    for shape in ((1, 3, 512, 512), (3, 3, 208, 176)):
        x = torch.randn(*shape, generator=gen)
        with torch.inference_mode():
            assert torch.equal(traced(x), monai_net(x)), shape
    # A file without the traced network (older versions) still loads, as a MONAI module.
    blob = torch.load(DEFAULT_WEIGHTS, weights_only=True)
    del blob["torchscript"]
    torch.save(blob, tmp_path / "old.pt")
    old, _, _ = load_weights(tmp_path / "old.pt")
    with torch.inference_mode():
        assert torch.equal(old(x), monai_net(x))


def test_inference_never_imports_monai():
    """Loading the shipped model and segmenting must not pay MONAI's 1.5-3 s import."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from spinemetrics.image import Image; "
            "from spinemetrics.segment import segment; "
            "img = Image(np.random.default_rng(0).normal(100, 10, (6, 64, 64)).astype('f4'), "
            "np.diag([4.0, 1.0, 1.0, 1.0])); segment(img, device='cpu', threads=1); "
            "print('monai' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_output_on_input_grid_any_orientation(phantom_t2):
    img = phantom_t2.image
    # Store the phantom as PIR (as DICOM-derived sagittal NIfTIs often are), then read it
    # back the library way (to_canonical keeps the source grid for writing).
    from spinemetrics.image import canonical_transform  # noqa: F401

    ornt = __import__("nibabel").orientations
    tr = ornt.ornt_transform(ornt.axcodes2ornt("RAS"), ornt.axcodes2ornt("PIR"))
    arr = ornt.apply_orientation(img.array, tr)
    aff = img.affine @ ornt.inv_ornt_aff(tr, img.shape)
    pir = Image(arr, aff, meta={"source_path": "pir.nii.gz"})
    canon = pir.to_canonical()
    res = segment(canon, device="cpu")
    assert res.seg.shape == canon.shape and np.allclose(res.seg.affine, canon.affine)
    assert res.levels.shape == canon.shape
    assert res.seg.array.dtype == np.uint8
    back = res.seg.to_source()
    assert back.shape == arr.shape and np.allclose(back.affine, aff)
    # Same answer whether or not the caller reoriented first.
    res2 = segment(pir, device="cpu")
    assert np.array_equal(res2.seg.array, res.seg.array)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


def test_phantom_dice_above_modest_threshold(phantom_t2):
    res = segment(phantom_t2.image, device="cpu")
    pred, truth = res.seg.array, phantom_t2.seg.array
    d_body = _dice(pred == Structure.vertebral_body, truth == Structure.vertebral_body)
    d_disc = _dice(pred == Structure.intervertebral_disc, truth == Structure.intervertebral_disc)
    d_sac = _dice(pred == Structure.thecal_sac, truth == Structure.thecal_sac)
    assert d_body > 0.7, d_body
    assert d_disc > 0.5, d_disc
    assert d_sac > 0.5, d_sac
    # Levels: at least L1..L5 named and the sacrum found.
    ids = set(np.unique(res.levels.array).tolist())
    assert {20, 21, 22, 23, 24, 26} <= ids, ids


def test_tiny_image_is_refused():
    img = Image(np.ones((5, 20, 200), np.float32), np.eye(4))
    with pytest.raises(ImageGeometryError, match="acquisition plane"):
        segment(img, model=_stub())


def test_constant_and_nan_images_are_refused(ras_image):
    with pytest.raises(InputError, match="constant"):
        segment(ras_image.with_array(np.zeros(ras_image.shape, np.float32)), model=_stub())
    bad = ras_image.array.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        segment(ras_image.with_array(bad), model=_stub())


def test_empty_prediction_warns_never_silent(ras_image):
    res = segment(ras_image, model=_stub(0))
    assert not res.seg.array.any()
    assert any("empty" in w for w in res.warnings)


def test_ct_like_and_axial_inputs_warn():
    rng = np.random.default_rng(1)
    ct = rng.normal(40, 30, (10, 64, 64)).astype(np.float32)
    ct[:, :10] = -1000  # air
    ct[:, 30:42, 30:42] = 900  # bone
    res = segment(Image(ct, np.diag([3.5, 1, 1, 1])), model=_stub(0))
    assert any("CT" in w for w in res.warnings)
    axial = Image(rng.normal(100, 10, (64, 64, 10)).astype(np.float32), np.diag([1, 1, 4.0, 1]))
    res = segment(axial, model=_stub(0))
    assert any("axial" in w for w in res.warnings)


def test_unavailable_device_is_a_clear_error(ras_image):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ModelError, match="no CUDA GPU"):
        load_model("cuda")
    with pytest.raises(ModelError, match="unknown device"):
        load_model("tpu")


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model("cpu", tmp_path / "nope.pt")


def test_postprocess_drops_fragments_known_sizes():
    lab = np.zeros((20, 40, 40), np.uint8)
    lab[2:12, 5:25, 5:25] = Structure.vertebral_body  # 4000 mm³ at 1 mm
    lab[15:17, 30:32, 30:32] = Structure.vertebral_body  # 8 mm³ fragment
    lab[2:18, 30:38, 2:10] = Structure.sacrum  # 1024 mm³
    lab[18:20, 0:3, 0:3] = Structure.sacrum  # 18 mm³ second part
    out, notes = postprocess(lab, 1.0)
    assert (out == Structure.vertebral_body).sum() == 4000
    assert (out == Structure.sacrum).sum() == 1024
    assert len(notes) == 2
    # A body far (> 25 mm) from the canal is dropped, one next to it kept.
    lab2 = np.zeros((30, 120, 60), np.uint8)
    lab2[10:20, 10:20, 5:55] = Structure.thecal_sac  # canal, 5000 mm³
    lab2[10:20, 22:40, 10:25] = Structure.vertebral_body  # 2 mm in front of it
    lab2[10:20, 80:100, 10:25] = Structure.vertebral_body  # 60 mm in front (bowel-like)
    out3, notes3 = postprocess(lab2, 1.0, (1.0, 1.0, 1.0))
    assert (out3[10:20, 22:40, 10:25] == Structure.vertebral_body).all()
    assert not (out3[:, 80:100] == Structure.vertebral_body).any()
    assert any("far from the spinal canal" in n for n in notes3)
    # At 0.1 mm³ voxels the 4000-voxel body is only 400 mm³ and still kept; 8 voxels are not.
    out2, _ = postprocess(lab, 0.1)
    assert (out2 == Structure.vertebral_body).sum() == 4000


@pytest.mark.parametrize("at_border", [True, False])
def test_postprocess_small_body_kept_only_where_the_field_of_view_cuts_it(at_border):
    """Three 4000 mm³ bodies and one of 600 mm³ (0.15 of them: under the 0.2 relative
    minimum). At the top face of the image it is a vertebra cut by the field of view and
    stays; anywhere else it is a speck and goes."""
    lab = np.zeros((12, 30, 80), np.uint8)
    for z0 in (2, 26, 50):  # separate bodies, 4 mm apart
        lab[1:11, 5:25, z0 : z0 + 20] = Structure.vertebral_body  # 10 × 20 × 20
    z_small = slice(77, 80) if at_border else slice(73, 76)  # top face vs 4 mm below it
    lab[1:11, 5:25, z_small] = Structure.vertebral_body  # 10 × 20 × 3 = 600 mm³
    out, notes = postprocess(lab, 1.0)
    kept = (out[:, :, z_small] == Structure.vertebral_body).sum()
    assert kept == (600 if at_border else 0)
    assert (out == Structure.vertebral_body).sum() == 12000 + kept
    assert any("vertebral_body: removed 1" in n for n in notes) is not at_border


@pytest.mark.parametrize("top_cut", [True, False])
def test_bodies_joined_laterally_are_separated_including_one_cut_by_the_image(top_cut):
    """Bodies joined through a lateral bridge (partial volume off the midline) are cut apart
    at seams; a body that the top face of the image cuts to 5 mm keeps its own seed and
    becomes its own vertebra instead of joining its neighbour."""
    from spinemetrics.segment.inference import _separate_bodies

    nz = 100 if top_cut else 110  # 5 mm of the top body in view, or the body whole
    lab = np.zeros((20, 40, nz), np.uint8)
    lab[8:12, 2:6, :] = Structure.thecal_sac  # canal: mid-sagittal plane at x = 10
    for z0, z1 in ((5, 25), (29, 49), (53, 73), (95, 100 if top_cut else 110)):
        lab[0:18, 10:30, z0:z1] = Structure.vertebral_body
    lab[0:3, 10:30, 5:100] = Structure.vertebral_body  # lateral bridge joining all of them
    notes: list[str] = []
    _separate_bodies(lab, (1.0, 1.0, 1.0), notes)
    body = lab == Structure.vertebral_body
    _, n = ndi.label(body)
    assert n == 4, n
    assert body[2:18, 10:30, 95:100].all()  # the top body itself stays body
    assert any("seam" in m for m in notes)


def test_postprocess_sacrum_above_lowest_disc_known_answer():
    """Sacrum voxels > 3 mm above the lowest disc's plane: behind the canal → posterior
    elements, in front → background; a disc 34 mm in front of the canal is dropped. All
    structures sit away from the array origin, so any error in the per-structure boxes
    (offsets) moves the plane or the parts."""
    lab = np.zeros((30, 64, 80), np.uint8)
    lab[12:19, 10:17, 5:76] = Structure.thecal_sac  # 7 × 7 × 71 mm canal, centre y = 13
    lab[8:23, 18:39, 20:26] = Structure.intervertebral_disc  # lowest disc, mid-plane z 22.5
    lab[8:23, 18:39, 50:56] = Structure.intervertebral_disc
    lab[25:30, 50:59, 60:71] = Structure.intervertebral_disc  # 495 mm³, 34 mm in front
    lab[8:23, 18:39, 2:20] = Structure.sacrum
    lab[12:19, 3:9, 2:35] = Structure.sacrum  # column behind the canal, up to z 34
    lab[12:19, 39:44, 2:35] = Structure.sacrum  # column in front of the discs, up to z 34
    out, notes = postprocess(lab, 1.0, (1.0, 1.0, 1.0))
    back, front = out[12:19, 3:9], out[12:19, 39:44]
    assert (back[..., 26:35] == Structure.posterior_elements).all()
    assert (back[..., 2:26] == Structure.sacrum).all()
    assert (front[..., 26:35] == 0).all()
    assert (front[..., 2:26] == Structure.sacrum).all()
    assert not (out[25:30, 50:59, 60:71] == Structure.intervertebral_disc).any()
    assert (out[8:23, 18:39, 50:56] == Structure.intervertebral_disc).all()
    assert any("far from the spinal canal" in n for n in notes)
    assert any("above the lumbosacral disc" in n for n in notes)


def test_real_axial_ct_dicom_warns(shared_data):
    from spinemetrics.io import read_image

    # An axial CT DICOM series (0.98 x 0.98 x 2 mm): both problems reported, no exception.
    ct = read_image(shared_data / "totalseg_ct_dicom" / "series")
    res = segment(ct, model=_stub(0))
    assert any("CT" in w for w in res.warnings)
    assert any("axial" in w for w in res.warnings)
    assert len(res.warnings) == len(set(res.warnings))  # each said once


def test_huge_images_warn_then_refuse(ras_image, monkeypatch):
    import spinemetrics.segment.inference as inf

    monkeypatch.setattr(inf, "_HUGE_VOXELS", 1000)
    res = segment(ras_image, model=_stub(0))
    assert any("very large" in w for w in res.warnings)
    monkeypatch.setattr(inf, "MAX_VOXELS", 5000)
    with pytest.raises(InputError, match="crop"):
        segment(ras_image, model=_stub(0))


def test_conus_prior_relabels_only_cord_below_l2_l3():
    from spinemetrics.labels import level_id
    from spinemetrics.phantom import make_phantom, random_params
    from spinemetrics.segment.inference import apply_conus_prior

    ph = make_phantom(random_params(7), spacing=(3.0, 1.0, 1.0), with_image=False)
    seg, lev, aff = np.asarray(ph.seg.array).copy(), np.asarray(ph.levels.array), ph.seg.affine
    n_cord = int((seg == Structure.spinal_cord).sum())
    assert n_cord > 100
    same, msg, mm3 = apply_conus_prior(seg, lev, aff)  # phantom conus ends at L1-L2
    assert msg is None and mm3 == 0.0 and np.array_equal(same, seg)
    # cauda equina called cord: the sac's core from mid-L4 up becomes "cord"
    z = np.arange(seg.shape[2]) * aff[2, 2] + aff[2, 3]
    l4 = np.argwhere(lev == level_id("L4"))
    l4_mid = float((l4 @ aff[2, :3] + aff[2, 3]).mean())
    l23 = np.argwhere(lev == level_id("L2-L3"))
    l23_mid = float((l23 @ aff[2, :3] + aff[2, 3]).mean())
    sac = ndi.binary_erosion(seg == Structure.thecal_sac, iterations=2)
    seg[sac & (z[None, None, :] >= l4_mid)] = Structure.spinal_cord
    expect_low = int(((seg == Structure.spinal_cord) & (z[None, None, :] < l23_mid)).sum())
    assert expect_low > 0
    kept, msg, mm3 = apply_conus_prior(seg, lev, aff, relabel=False)
    assert np.array_equal(kept, seg) and "reaches L4," in msg and "below L2-L3" in msg
    assert mm3 == pytest.approx(expect_low * 3.0)
    fixed, msg, _ = apply_conus_prior(seg, lev, aff)
    assert "relabelled as thecal_sac" in msg
    changed = fixed != seg
    assert changed.sum() == expect_low
    assert np.all(fixed[changed] == Structure.thecal_sac)
    assert not np.any((fixed == Structure.spinal_cord) & (z[None, None, :] < l23_mid))
    # no L2-L3 disc named (e.g. out of view): nothing to compare against
    no_disc = np.where(lev == level_id("L2-L3"), 0, lev)
    assert apply_conus_prior(seg, no_disc, aff)[1] is None


def test_postprocess_removes_cnn_errors_and_keeps_the_anatomy():
    """A phantom map with the usual CNN errors: specks of every structure, a body-sized
    "body" and a "disc" far in front of the spine (removed only by the canal distance), a
    sacrum fragment. All errors go, the anatomy stays, and a map with the same errors
    embedded in a larger field of view (moved away from the array origin) is cleaned the
    same way: parts, their boxes and distances are found in one pass over the whole map."""
    from spinemetrics.phantom import make_phantom, random_params

    ph = make_phantom(random_params(11), spacing=(3.0, 1.0, 1.0), with_image=False)
    truth = np.asarray(ph.seg.array)
    lab = truth.copy()
    rng = np.random.default_rng(0)
    specks = rng.integers(0, lab.size, 400)
    lab.ravel()[specks] = rng.integers(1, 12, 400)
    nx, ny, nz = lab.shape
    # body-sized (> 0.2 of the phantom's bodies), so only the canal distance removes it
    lab[nx // 2 - 6:nx // 2 + 6, -16:-2, nz // 2:nz // 2 + 35] = Structure.vertebral_body
    lab[nx // 2 - 6:nx // 2 + 6, -16:-2, nz // 2 + 40:nz // 2 + 48] = (
        Structure.intervertebral_disc)
    lab[1:3, 2:14, 2:20] = Structure.sacrum
    out, notes = postprocess(lab, 3.0, (3.0, 1.0, 1.0))
    assert not np.isin(out[:, -16:-2, nz // 2:nz // 2 + 48],
                       (Structure.vertebral_body, Structure.intervertebral_disc)).any()
    assert not (out[1:3, 2:14, 2:20] == Structure.sacrum).any()
    assert any("far from the spinal canal" in n for n in notes)
    # Specks go, except the few that touch a real part of their own class (then one part).
    speck = np.zeros(lab.shape, bool)
    speck.ravel()[specks] = True
    speck &= lab != truth
    assert (out[speck] == 0).mean() > 0.9
    for s in (Structure.vertebral_body, Structure.intervertebral_disc, Structure.thecal_sac,
              Structure.sacrum):
        assert (out[truth == s] == s).mean() > 0.95, s.name
    pad = ((5, 2), (3, 20), (7, 0))  # no padding at the top: cut parts stay cut
    big, big_notes = postprocess(np.pad(lab, pad), 3.0, (3.0, 1.0, 1.0))
    inner = tuple(slice(p[0], p[0] + n) for p, n in zip(pad, lab.shape, strict=True))
    assert np.array_equal(big[inner], out) and big_notes == notes


def test_removing_many_parts_at_once_equals_removing_them_in_small_groups():
    """Part removal switches from per-part boxes to one pass over the map above 256 parts
    (noisy scans have thousands of specks); both must clear exactly the same voxels."""
    from spinemetrics.segment.inference import _Parts

    rng = np.random.default_rng(1)
    lab = ((rng.random((20, 60, 60)) < 0.3)
           * rng.integers(1, 12, (20, 60, 60))).astype(np.uint8)
    one_pass, grouped = _Parts.of(lab), _Parts.of(lab)
    ids = np.flatnonzero((one_pass.sizes < 3) & one_pass.alive)
    assert len(ids) > 1000
    a, b = lab.copy(), lab.copy()
    one_pass.remove(a, ids)
    for k in range(0, len(ids), 200):
        grouped.remove(b, ids[k:k + 200])
    assert np.array_equal(a, b)
    kept = np.isin(_Parts.of(lab).comp, ids, invert=True)
    assert np.array_equal(a[kept], lab[kept]) and not a[~kept].any()
    assert not one_pass.alive[ids].any()


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_thin_slice_box_average_is_centred(k):
    """The box average of thin slices keeps an impulse centred on its slice (an even
    window used to move it half a slice sideways), sums to one and keeps a constant."""
    from spinemetrics.segment.inference import _centred_box

    vol = np.zeros((21, 3, 2), np.float32)
    vol[10] = 1.0
    out = _centred_box(vol.copy(), k)[:, 0, 0]
    np.testing.assert_allclose(out, out[::-1], atol=1e-7)  # symmetric about slice 10
    assert out.sum() == pytest.approx(1.0)
    assert (out * np.arange(21)).sum() == pytest.approx(10.0)  # centre of mass
    assert np.count_nonzero(out) == (k if k % 2 else k + 1)
    np.testing.assert_allclose(_centred_box(np.full((9, 2, 2), 3.0, np.float32), k), 3.0)
