"""Synthesis, label sources and the loss: determinism, geometry and known answers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from spinemetrics.segment.sources import (
    IGNORE,
    N_CLASSES,
    base_lut,
    from_contract_seg,
    resample_nearest_iso,
)
from spinemetrics.segment.synth import SynthConfig, Synthesizer, normalize_percentile
from spinemetrics.segment.train import TrainConfig, dice_ce_loss, dice_per_class, train


def _toy_seg() -> np.ndarray:
    """A 1 mm 'spine': 5 bodies separated by discs, a sac behind them, muscle behind."""
    seg = np.zeros((40, 80, 120), np.uint8)
    for i in range(5):
        z0 = 10 + i * 20
        seg[12:28, 40:65, z0 : z0 + 14] = 1
        seg[12:28, 42:63, z0 + 14 : z0 + 20] = 4
    seg[16:24, 30:38, 5:115] = 5
    seg[5:35, 5:25, 5:115] = 10
    return seg


def test_resample_nearest_iso_keeps_world_positions():
    """A 4 x 4 x 2 voxel block of a PIR 0.5 x 0.5 x 3 mm map is 2 x 2 x 6 mm = 24 mm³."""
    arr = np.zeros((20, 20, 6), np.uint8)
    arr[8:12, 6:10, 2:4] = 5
    aff = np.array([[0, 0, 3.0, -10], [-0.5, 0, 0, 20], [0, -0.5, 0, 30], [0, 0, 0, 1]])
    out, out_aff = resample_nearest_iso(arr, aff, 1.0)
    assert nib.aff2axcodes(out_aff) == ("R", "A", "S")
    assert np.allclose(np.abs(np.diag(out_aff)[:3]), 1.0)
    assert (out == 5).sum() == 24
    src_centre = aff @ np.array([9.5, 7.5, 2.5, 1.0])
    idx = np.argwhere(out == 5).mean(0)
    out_centre = out_aff @ np.array([*idx, 1.0])
    assert np.allclose(src_centre[:3], out_centre[:3], atol=0.51)


def test_contract_source_sublabels_map_back_to_classes():
    seg = _toy_seg()
    src = from_contract_seg(seg, name="toy", rng=np.random.default_rng(0))
    assert np.array_equal(src.classes, seg)  # sub-labels never change the class
    assert len(np.unique(src.sub[seg == 1])) >= 2  # cortex vs marrow
    assert len(np.unique(src.sub[seg == 0])) >= 3  # background split into blobs
    near = from_contract_seg(seg, name="toy", rng=np.random.default_rng(0),
                             background_ignore_mm=5.0)
    cls = near.classes
    assert (cls == IGNORE).any() and np.array_equal(cls[seg > 0], seg[seg > 0])
    assert base_lut()[255] == IGNORE


def test_synthesizer_is_deterministic_and_shapes_follow_config():
    src = from_contract_seg(_toy_seg(), name="toy", rng=np.random.default_rng(0))
    cfg = SynthConfig(patch=(64, 96), n_ctx=3)
    a = Synthesizer([src], config=cfg, seed=7).batch(3)
    b = Synthesizer([src], config=cfg, seed=7).batch(3)
    c = Synthesizer([src], config=cfg, seed=8).batch(3)
    assert a[0].shape == (3, 3, 64, 96) and a[1].shape == (3, 64, 96)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    labels = set(torch.unique(a[1]).tolist())
    assert labels <= set(range(N_CLASSES)) | {IGNORE}


def test_synthetic_patch_labels_follow_geometry():
    """With no rotation/scaling/elastic warp the centre-slice target is a plain crop."""
    seg = _toy_seg()
    src = from_contract_seg(seg, name="toy", rng=np.random.default_rng(0))
    cfg = SynthConfig(patch=(80, 120), rotation_inplane_deg=0, rotation_tilt_deg=0,
                      scale=(1.0, 1.0), scale_aniso=0.0, elastic_mm=0.0, p_fov_cut=0.0,
                      p_offmid=0.0)
    syn = Synthesizer([src], config=cfg, seed=0)
    syn._centres[0] = np.array([[20.0, 39.5, 59.5]], np.float32)
    syn.rng = np.random.default_rng(0)
    # Remove the centre jitter: draw until the patch matches a crop (jitter is random).
    _, y = syn.sample()
    y = y.numpy()
    # Every row (A-P) / column (S-I) pattern of the toy spine must appear: bodies (1) and
    # discs (4) alternate along the S-I axis with the right thicknesses (14 and 6 voxels).
    row = y[(y == 1).any(1).nonzero()[0][len((y == 1).any(1).nonzero()[0]) // 2]]
    runs = [(v, len(list(g))) for v, g in __import__("itertools").groupby(row)]
    inner = [r for r in runs[1:-1] if r[0] in (1, 4)]
    assert {r[1] for r in inner if r[0] == 1} <= {13, 14, 15}
    assert {r[1] for r in inner if r[0] == 4} <= {5, 6, 7}


def test_normalize_percentile_maps_to_unit_range():
    x = torch.linspace(0, 1000, 10001)
    y = normalize_percentile(x, 1, 99)
    assert abs(float(y[100]) - 0.0) < 1e-3 and abs(float(y[-101]) - 1.0) < 1e-3
    assert float(y.min()) >= -0.2 and float(y.max()) <= 1.5


def test_loss_known_answers_and_ignore_label():
    t = torch.zeros(2, 16, 16, dtype=torch.long)
    t[:, 4:10, 4:10] = 1
    perfect = torch.nn.functional.one_hot(t, 12).permute(0, 3, 1, 2).float() * 30
    assert float(dice_ce_loss(perfect, t)) < 1e-3
    wrong = perfect.roll(1, dims=1)
    assert float(dice_ce_loss(wrong, t)) > 1.0
    # Pixels marked IGNORE do not change the loss, whatever the prediction there.
    t2 = t.clone()
    t2[:, 12:, 12:] = IGNORE
    noisy = perfect.clone()
    noisy[:, :, 12:, 12:] = torch.randn(2, 12, 4, 4) * 30
    assert abs(float(dice_ce_loss(noisy, t2)) - float(dice_ce_loss(perfect, t2))) < 1e-4


def test_class_weights_scale_cross_entropy_of_that_class_only():
    # Uniform logits: every pixel's cross-entropy is log(12), whatever its class. With
    # weights, the mean is a weighted mean, so it stays log(12); the Dice part is unchanged.
    t = torch.zeros(1, 8, 8, dtype=torch.long)
    t[:, :2] = 7
    flat = torch.zeros(1, 12, 8, 8)
    w = torch.ones(12)
    w[7] = 5.0
    assert torch.isclose(dice_ce_loss(flat, t, w), dice_ce_loss(flat, t), atol=1e-6)
    # A prediction that is wrong only on class 7 pixels costs more when class 7 weighs more:
    # weighted CE = 5 * n7 * ce_wrong / (5 * n7 + n0) vs n7 * ce_wrong / (n7 + n0).
    good = torch.nn.functional.one_hot(torch.zeros_like(t), 12).permute(0, 3, 1, 2).float() * 20
    ce_plain = torch.nn.functional.cross_entropy(good, t)
    ce_weighted = torch.nn.functional.cross_entropy(good, t, weight=w)
    n7, n0 = 16, 48
    per_pixel = ce_plain * (n7 + n0) / n7
    assert torch.isclose(ce_weighted, 5 * n7 * per_pixel / (5 * n7 + n0), rtol=1e-5)
    diff = dice_ce_loss(good, t, w) - dice_ce_loss(good, t)
    assert torch.isclose(diff, ce_weighted - ce_plain, rtol=1e-4)


def test_dice_per_class_known_values():
    p = np.array([0, 1, 1, 2, 2, 2])
    t = np.array([0, 1, 2, 2, 2, IGNORE])
    d = dice_per_class(p, t, 4)
    assert d[0] == 1.0
    assert np.isclose(d[1], 2 * 1 / (2 + 1))
    assert np.isclose(d[2], 2 * 2 / (2 + 3))
    assert np.isnan(d[3])


def test_train_smoke_writes_loadable_weights(tmp_path):
    from spinemetrics.segment.model import load_weights

    src = from_contract_seg(_toy_seg(), name="toy", rng=np.random.default_rng(0))
    cfg = TrainConfig(steps=3, batch_size=2, warmup_steps=1, val_samples=2, loader_workers=0,
                      checkpoint_minutes=0.0, synth=SynthConfig(patch=(48, 48)))
    summary = train([src], tmp_path, cfg, model_config={"channels": (4, 8, 16), "strides": (2, 2),
                                                        "num_res_units": 1})
    assert summary["steps"] == 3
    net, mcfg, meta = load_weights(tmp_path / "best.pt")
    assert meta["steps"] >= 1 and meta["sources"] == ["toy"]
    assert net(torch.zeros(1, 3, 48, 48)).shape == (1, 12, 48, 48)
    # Fine-tuning from that file (it carries a traced network) starts from its MONAI module
    # and writes a file whose traced network is the fine-tuned one.
    cfg.init_weights = str(tmp_path / "best.pt")
    train([src], tmp_path / "ft", cfg)
    traced, _, _ = load_weights(tmp_path / "ft" / "best.pt")
    monai_net, _, _ = load_weights(tmp_path / "ft" / "best.pt", trainable=True)
    assert isinstance(traced, torch.jit.ScriptModule)
    x = torch.randn(2, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(traced(x), monai_net(x))
        assert not torch.equal(traced(x), net(x))  # the fine-tune changed the weights


def test_train_records_device_and_refuses_missing_cuda(tmp_path, monkeypatch):
    from spinemetrics.errors import ModelError
    from spinemetrics.segment.model import load_weights

    src = from_contract_seg(_toy_seg(), name="toy", rng=np.random.default_rng(0))
    small = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 1}
    cfg = TrainConfig(steps=2, batch_size=2, warmup_steps=1, val_samples=2, loader_workers=0,
                      checkpoint_minutes=0.0, synth=SynthConfig(patch=(48, 48)), device="auto")
    train([src], tmp_path / "auto", cfg, model_config=small)
    _, _, meta = load_weights(tmp_path / "auto" / "best.pt")
    expected = "cuda" if torch.cuda.is_available() else "cpu fp32"
    assert meta["device"].startswith(expected)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg.device = "cuda"
    with pytest.raises(ModelError, match="no CUDA GPU"):
        train([src], tmp_path / "cuda", cfg, model_config=small)
    assert not (tmp_path / "cuda" / "best.pt").exists()


@pytest.mark.parametrize("channels", [(6, 12, 24, 48), (4, 10, 16, 40), (4, 8, 16, 32)])
def test_widened_network_computes_what_the_original_computes(channels):
    from spinemetrics.segment.model import build_network, count_parameters, widen_network

    cfg = {"channels": (4, 8, 16, 32), "strides": (2, 2, 2), "num_res_units": 1}
    torch.manual_seed(0)
    net = build_network(cfg).eval()
    wide, wide_cfg = widen_network(net, cfg, channels, seed=3)
    assert list(wide_cfg["channels"]) == list(channels)
    assert count_parameters(wide) >= count_parameters(net)
    x = torch.randn(2, 3, 40, 56, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(wide.eval()(x), net(x), rtol=0, atol=1e-5)


def test_widened_network_learns_through_its_new_channels():
    from spinemetrics.segment.model import build_network, widen_network

    cfg = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 1}
    torch.manual_seed(0)
    wide, _ = widen_network(build_network(cfg), cfg, (8, 16, 32), seed=1)
    first = wide.model[0].conv.unit0.conv.weight  # (8, 3, 3, 3): outputs 4..7 are new
    second = wide.model[1].submodule[0].conv.unit0.conv.weight  # (16, 8, 3, 3)
    assert torch.count_nonzero(second[:8, 4:]) == 0  # new channels start silent ...
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 12, (2, 32, 32), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.SGD(wide.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        dice_ce_loss(wide(x), target).backward()
        opt.step()
    assert torch.count_nonzero(second[:8, 4:]) > 0  # ... and take part once trained
    assert first.shape == (8, 3, 3, 3)


def test_widening_refuses_a_narrower_or_shallower_network():
    from spinemetrics.errors import ModelError
    from spinemetrics.segment.model import build_network, widen_network

    cfg = {"channels": (4, 8, 16), "strides": (2, 2), "num_res_units": 1}
    net = build_network(cfg)
    with pytest.raises(ModelError, match="at least as wide"):
        widen_network(net, cfg, (4, 6, 16))
    with pytest.raises(ModelError, match="as many"):
        widen_network(net, cfg, (4, 8, 16, 32))
    two_units = {**cfg, "num_res_units": 2}
    with pytest.raises(ModelError, match="num_res_units=1"):
        widen_network(build_network(two_units), two_units, (8, 16, 32))
