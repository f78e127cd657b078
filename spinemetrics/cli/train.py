"""``spinemetrics train``: train (or fine-tune) the segmentation CNN by label-map synthesis."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def _number_list(text: str | None, kind: type, option: str, example: str) -> tuple | None:
    """``"1,2,3"`` → ``(1, 2, 3)`` of ``kind`` (None when not given), or a usage error."""
    if not text:
        return None
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{option} takes comma-separated {example}") from None


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        out: Path = typer.Option(..., "--out", "-o", help="Run folder (weights, log, checkpoint)."),
        data: Path = typer.Option(
            Path(__file__).resolve().parents[3] / "shared" / "data", "--data",
            help="Folder with the built-in label maps (panoptica, TotalSegmentator).",
        ),
        phantoms: int = typer.Option(40, help="Number of random phantoms (seeds 0..N-1)."),
        pairs: Path | None = typer.Option(
            None, help="Folder of image/label pairs (X.nii.gz + X_seg.nii.gz) to fine-tune on."),
        pairs_convention: str | None = typer.Option(
            None, help="Foreign label convention of --pairs (read by spinemetrics.convert)."),
        init: Path | None = typer.Option(None, help="Start from these weights (fine-tuning)."),
        widen: str | None = typer.Option(
            None, help="Widen the --init network to these channels per level first, e.g. "
            "24,48,96,192,384 (its outputs are unchanged until training moves them)."),
        steps: int = typer.Option(20000, help="Optimiser steps."),
        batch: int = typer.Option(8, help="Batch size."),
        lr: float = typer.Option(3e-3, help="Peak learning rate (AdamW, cosine decay)."),
        seed: int = typer.Option(0, help="Seed (synthesis, initialisation, validation)."),
        threads: int = typer.Option(1, help="Torch threads of the training process."),
        workers: int = typer.Option(1, help="Synthesis worker processes."),
        minutes: float | None = typer.Option(None, help="Stop after this many minutes."),
        checkpoint_minutes: float = typer.Option(5.0, help="Checkpoint/validation interval."),
        resume: bool = typer.Option(False, help="Resume from OUT/ckpt.pt."),
        patch: int = typer.Option(128, help="Training patch size (pixels of 1 mm)."),
        cache: Path | None = typer.Option(None, help="Phantom cache folder (phantom_<seed>.npz)."),
        class_weights: str | None = typer.Option(
            None, help="Cross-entropy weight per class, comma-separated, background first "
            "(12 values), e.g. to up-weight thin structures."),
        p_offmid: float = typer.Option(
            0.3, help="Share of training slabs taken off the midline (foramina, roots, muscle)."),
        cached_only: bool = typer.Option(
            False, help="Use only phantoms already in --cache and pick up new ones while "
            "training (render them in another process)."),
        device: str = typer.Option(
            "cpu", help="Torch device: auto, cpu, cuda, cuda:N (CUDA trains under bf16 "
            "autocast; give it several --workers, synthesis runs on the CPU)."),
        amp: bool = typer.Option(True, help="bf16 autocast on CUDA (ignored on CPU)."),
    ) -> None:
        """Train the 2.5D UNet on synthetic images made from label maps (see docs/model.md)."""
        import numpy as np

        from spinemetrics.segment.sources import default_sources, pair_sources
        from spinemetrics.segment.train import TrainConfig, default_weights, train

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        def build() -> list:
            srcs = default_sources(data, phantom_seeds=list(range(phantoms)), seed=seed,
                                   cache_dir=cache, cached_only=cached_only)
            if pairs is not None:
                srcs += pair_sources(pairs, np.random.default_rng(seed), pairs_convention)
            return srcs

        sources = build()

        def refresh() -> list:
            # Only the phantom list can grow; reuse the other (slow-to-build) sources.
            from spinemetrics.segment.sources import phantom_sources

            others = [s for s in sources if not s.name.startswith("phantom/")]
            return phantom_sources(list(range(phantoms)), cache, True) + others
        from spinemetrics.segment.synth import SynthConfig

        weights_ce = _number_list(class_weights, float, "--class-weights",
                                  "numbers, e.g. 1,1,2,1,1,1,2,5,2,3,1,1")
        if widen and init is None:
            raise typer.BadParameter("--widen needs --init: the network to widen")
        widen_channels = _number_list(widen, int, "--widen",
                                      "channel counts, e.g. 24,48,96,192,384")
        cfg = TrainConfig(synth=SynthConfig(patch=(patch, patch), p_offmid=p_offmid),
                          class_weights=weights_ce, steps=steps,
                          batch_size=batch, lr=lr, seed=seed, threads=threads,
                          loader_workers=workers, max_minutes=minutes,
                          checkpoint_minutes=checkpoint_minutes,
                          init_weights=str(init) if init else None, device=device, amp=amp,
                          widen_channels=widen_channels)
        typer.echo(f"{len(sources)} label sources; training in {out}")
        summary = train(sources, out, cfg, weights=default_weights(sources), resume=resume,
                        refresh=refresh if cached_only else None)
        typer.echo(f"done: {summary['steps']} steps in {summary['minutes']} min, "
                   f"best validation mean Dice {summary['best_val_mean_dice']:.3f}")
