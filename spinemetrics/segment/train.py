"""Training loop: synthesis on the fly, DiceCE loss with an ignore label, timed checkpoints.

Reproducible from a seed: the synthesiser stream, the network initialisation and the
held-out validation batch are all seeded. Checkpoints are written every
``checkpoint_minutes`` so a long CPU run can be stopped at any time and resumed
(``resume=True``); the best weights by validation Dice are kept separately.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from spinemetrics.atomic import atomic_path
from spinemetrics.errors import ModelError
from spinemetrics.segment.model import (
    DEFAULT_CONFIG,
    build_network,
    load_weights,
    resolve_device,
    save_weights,
    widen_network,
)
from spinemetrics.segment.sources import IGNORE, N_CLASSES, LabelSource
from spinemetrics.segment.synth import SynthConfig, Synthesizer

__all__ = ["TrainConfig", "dice_ce_loss", "dice_per_class", "train", "default_weights"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    steps: int = 20000
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    seed: int = 0
    threads: int = 1
    loader_workers: int = 1
    checkpoint_minutes: float = 5.0
    val_samples: int = 24
    max_minutes: float | None = None
    init_weights: str | None = None  # fine-tune from these weights
    # Widen the ``init_weights`` network to these channels per level first
    # (function-preserving, :func:`~spinemetrics.segment.model.widen_network`).
    widen_channels: tuple[int, ...] | None = None
    # Cross-entropy weight per class (len N_CLASSES); thin structures (roots, ligamentum
    # flavum) are a few pixels wide and are otherwise drowned by the background.
    class_weights: tuple[float, ...] | None = None
    # "auto" | "cpu" | "cuda[:N]". On CUDA the forward/backward pass runs under bf16
    # autocast (``amp``); on CPU it stays fp32 (bf16 was slower on the AVX2 CPU measured).
    device: str = "cpu"
    amp: bool = True
    synth: SynthConfig = field(default_factory=SynthConfig)


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor,
                 class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy + soft Dice (classes 1..K-1 present in the batch), ignoring 255.

    ``class_weights`` (one per class) weight the cross-entropy term only.
    """
    ce = F.cross_entropy(logits, target, weight=class_weights, ignore_index=IGNORE)
    valid = (target != IGNORE).unsqueeze(1)
    prob = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp_max(logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2)
    onehot = onehot * valid
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1.0) / (denom + 1.0)
    present = onehot.sum(dims) > 0
    present[0] = False
    dl = (1 - dice[present]).mean() if present.any() else logits.sum() * 0
    return ce + dl


def dice_per_class(pred: np.ndarray, target: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """Dice per class (NaN where the class is absent from both), ignoring 255 in target."""
    valid = target != IGNORE
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        p = (pred == c) & valid
        t = target == c
        s = p.sum() + t.sum()
        if s:
            out[c] = 2 * (p & t).sum() / s
    return out


def default_weights(sources: list[LabelSource]) -> list[float]:
    """Sampling weights: phantoms 55 %, real spine maps 30 %, user pairs 30 % (if any),
    whole-abdomen background maps 10 % — split equally within each group."""
    groups = {"phantom": 0.55, "panoptica": 0.30, "pairs": 0.30, "totalseg": 0.10}
    names = [s.name.split("/")[0].split("_")[0] for s in sources]
    counts = {g: names.count(g) for g in groups}
    w = [groups.get(n, 0.1) / max(1, counts.get(n, 1)) for n in names]
    return w


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, sources: list[LabelSource], weights: list[float] | None, cfg: TrainConfig,
                 refresh: Callable[[], list[LabelSource]] | None = None) -> None:
        self.sources, self.weights, self.cfg, self.refresh = sources, weights, cfg, refresh

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        torch.set_num_threads(1)
        seed = self.cfg.seed * 1000 + wid
        syn = Synthesizer(self.sources, self.weights, self.cfg.synth, seed=seed)
        n = 0
        t_refresh = time.time()
        while True:
            yield syn.batch(self.cfg.batch_size)
            n += 1
            if self.refresh is not None and time.time() - t_refresh > 300:
                t_refresh = time.time()
                new = self.refresh()
                if len(new) != len(syn.sources):
                    log.info("synthesis sources: %d -> %d", len(syn.sources), len(new))
                    syn = Synthesizer(new, default_weights(new), self.cfg.synth, seed=seed + n)


def _lr(step: int, cfg: TrainConfig, minutes: float = 0.0) -> float:
    """Linear warm-up, then cosine decay over the steps or the time budget, whichever
    runs out first (so a time-limited CPU run still ends with a small learning rate)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    if cfg.max_minutes:
        frac = max(frac, minutes / cfg.max_minutes)
    return cfg.lr * max(0.02, 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train(
    sources: list[LabelSource],
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    weights: list[float] | None = None,
    model_config: dict[str, Any] | None = None,
    resume: bool = False,
    progress: Any = None,
    refresh: Callable[[], list[LabelSource]] | None = None,
) -> dict[str, Any]:
    """Train the segmenter; write ``out_dir/{last,best}.pt`` (fp16), ``ckpt.pt`` and ``log.csv``.

    Parameters
    ----------
    sources : list of LabelSource
        Label maps to synthesise from (see :mod:`spinemetrics.segment.sources`).
    out_dir : path
    cfg : TrainConfig, optional
    weights : list of float, optional
        Sampling weight per source.
    model_config : dict, optional
        Network overrides of :data:`~spinemetrics.segment.model.DEFAULT_CONFIG`.
    resume : bool
        Continue from ``out_dir/ckpt.pt`` when present.
    progress : callable, optional
        Called as ``progress(step, total, loss)`` after each step.
    refresh : callable, optional
        Returns an updated source list (e.g. phantoms rendered meanwhile by another
        process); polled every 250 batches by the synthesis worker.

    Returns
    -------
    dict
        Summary: steps done, minutes, best validation Dice per class.
    """
    cfg = cfg or TrainConfig()
    device = resolve_device(cfg.device)
    use_amp = bool(cfg.amp) and device.type == "cuda"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    mcfg = {**DEFAULT_CONFIG, **(model_config or {}), "in_channels": cfg.synth.n_ctx}
    if cfg.init_weights:
        net, mcfg, _ = load_weights(cfg.init_weights, trainable=True)
        if cfg.widen_channels:
            net, mcfg = widen_network(net, mcfg, cfg.widen_channels, seed=cfg.seed)
        net.train()
    elif cfg.widen_channels:
        raise ModelError("widen_channels needs init_weights: a network to widen")
    else:
        net = build_network(mcfg)
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best, t_used = 0, -1.0, 0.0
    ckpt = out / "ckpt.pt"
    if resume and ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(st["net"])  # copies onto the network's device
        opt.load_state_dict(st["opt"])
        step, best, t_used = st["step"], st["best"], st.get("minutes", 0.0) * 60
        log.info("resumed at step %d", step)

    # Fixed held-out validation batch: its own seed, never used for training.
    val_syn = Synthesizer(sources, weights, cfg.synth, seed=10_000 + cfg.seed)
    vx, vy = val_syn.batch(cfg.val_samples)
    vx = vx.to(device)

    meta_base = {
        "seed": cfg.seed,
        "sources": [s.name for s in sources],
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "synth"},
        "device": str(device) + (" bf16 autocast" if use_amp else " fp32"),
        "synth_config": asdict(cfg.synth),
    }
    from spinemetrics import __version__

    loader = torch.utils.data.DataLoader(
        _Stream(sources, weights, cfg, refresh), batch_size=None, num_workers=cfg.loader_workers,
        prefetch_factor=4 if cfg.loader_workers else None,
        persistent_workers=bool(cfg.loader_workers), pin_memory=device.type == "cuda",
    )
    logf = out / "log.csv"
    new_log = not logf.exists() or not resume
    fh = logf.open("w" if new_log else "a", newline="")
    writer = csv.writer(fh)
    if new_log:
        writer.writerow(["step", "minutes", "lr", "loss", "val_mean_dice"] +
                        [f"dice_{c}" for c in range(N_CLASSES)])
    t0 = time.time() - t_used
    t_ckpt = time.time()
    losses: list[float] = []
    best_dice = None

    def evaluate() -> np.ndarray:
        net.eval()
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
            pred = torch.cat([net(vx[i : i + 8]).argmax(1) for i in range(0, len(vx), 8)])
        net.train()
        return dice_per_class(pred.cpu().numpy(), vy.numpy())

    def save(kind: str, dice: np.ndarray) -> None:
        meta = {**meta_base, "steps": step, "minutes": round((time.time() - t0) / 60, 1),
                "val_dice": [None if np.isnan(d) else round(float(d), 4) for d in dice],
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "spinemetrics_version": __version__}
        save_weights(net, out / f"{kind}.pt", mcfg, meta)

    ce_weights = None
    if cfg.class_weights is not None:
        if len(cfg.class_weights) != N_CLASSES:
            raise ValueError(f"class_weights needs {N_CLASSES} values (background first), "
                             f"got {len(cfg.class_weights)}")
        ce_weights = torch.tensor(cfg.class_weights, dtype=torch.float32, device=device)
    net.train()
    for x, y in loader:
        if step >= cfg.steps:
            break
        lr = _lr(step, cfg, (time.time() - t0) / 60)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=use_amp):
            logits = net(x)
        loss = dice_ce_loss(logits.float(), y, ce_weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        if progress:
            progress(step, cfg.steps, losses[-1])
        elapsed = (time.time() - t0) / 60
        done = step >= cfg.steps or (cfg.max_minutes and elapsed >= cfg.max_minutes)
        if time.time() - t_ckpt >= cfg.checkpoint_minutes * 60 or done:
            dice = evaluate()
            mean = float(np.nanmean(dice[1:]))
            writer.writerow([step, round(elapsed, 2), round(lr, 6), round(np.mean(losses), 4),
                             round(mean, 4)] + [round(float(d), 4) for d in dice])
            fh.flush()
            losses.clear()
            save("last", dice)
            if mean > best:
                best, best_dice = mean, dice
                save("best", dice)
            with atomic_path(ckpt) as tmp:
                torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step,
                            "best": best, "minutes": elapsed}, tmp)
            t_ckpt = time.time()
            log.info("step %d  %.1f min  val mean Dice %.3f", step, elapsed, mean)
        if done:
            break
    fh.close()
    summary = {"steps": step, "minutes": round((time.time() - t0) / 60, 1),
               "best_val_mean_dice": best,
               "best_val_dice": None if best_dice is None else [float(d) for d in best_dice]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
