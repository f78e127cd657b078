"""The network (a compact 2.5D MONAI UNet) and its weight files.

A weight file is a ``torch.save`` dict: ``{"state_dict": fp16 tensors, "config": {...},
"meta": {...}}``. ``config`` rebuilds the network; ``meta`` records how it was trained
(steps, seed, sources, date, spinemetrics version) and the input convention (spacing,
slice context), so inference never has to guess.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spinemetrics.atomic import atomic_path
from spinemetrics.errors import ModelError

__all__ = [
    "DEFAULT_CONFIG",
    "build_network",
    "save_weights",
    "load_weights",
    "count_parameters",
    "resolve_device",
]

#: Architecture + input convention of the shipped model.
DEFAULT_CONFIG: dict[str, Any] = {
    "arch": "monai.UNet",
    "spatial_dims": 2,
    "in_channels": 3,  # sagittal slice and its two neighbours (2.5D)
    "out_channels": 12,  # background + 11 structures (CONTRACT §2)
    "channels": (16, 32, 64, 128, 256),
    "strides": (2, 2, 2, 2),
    "num_res_units": 1,
    "norm": "instance",
    "inplane_spacing_mm": 1.0,  # slices are resampled to this in-plane grid
    "context_spacing_mm": 3.5,  # preferred distance between channel slices at inference
}


def build_network(config: dict[str, Any] | None = None) -> torch.nn.Module:
    """Build the (untrained) network described by ``config``.

    Parameters
    ----------
    config : dict, optional
        Keys as in :data:`DEFAULT_CONFIG` (missing keys take those values).

    Returns
    -------
    torch.nn.Module
    """
    from monai.networks.nets import UNet

    cfg = {**DEFAULT_CONFIG, **(config or {})}
    return UNet(
        spatial_dims=cfg["spatial_dims"],
        in_channels=cfg["in_channels"],
        out_channels=cfg["out_channels"],
        channels=tuple(cfg["channels"]),
        strides=tuple(cfg["strides"]),
        num_res_units=cfg["num_res_units"],
        norm=cfg["norm"],
    )


def count_parameters(net: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))


def save_weights(
    net: torch.nn.Module, path: str | Path, config: dict[str, Any], meta: dict[str, Any]
) -> Path:
    """Write an fp16 state dict with its config and training metadata (atomically)."""
    sd = {
        k: (v.detach().cpu().to(torch.float16) if v.is_floating_point() else v.detach().cpu())
        for k, v in net.state_dict().items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}
    with atomic_path(path) as tmp:
        torch.save({"state_dict": sd, "config": cfg, "meta": meta}, tmp)
    return path


def load_weights(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict, dict]:
    """Load a weight file → ``(network in eval mode, config, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"model weights not found at {path}; reinstall spinemetrics or pass model= a "
            "weight file made by `spinemetrics train`"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = {**DEFAULT_CONFIG, **blob["config"]}
        net = build_network(cfg)
        net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    except (KeyError, RuntimeError, OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load model weights {path} ({type(exc).__name__}); the file is corrupt or "
            "from an incompatible version: retrain with `spinemetrics train` or reinstall"
        ) from None
    return net.to(device).eval(), cfg, dict(blob.get("meta", {}))


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda``/``cuda:N``/``mps``/``cpu`` checked."""
    device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(f"--device {device} requested but no CUDA GPU is available; "
                             "use --device cpu")
    elif device == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ModelError("--device mps requested but Apple MPS is not available; use cpu")
    elif device != "cpu":
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ModelError(f"invalid device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
