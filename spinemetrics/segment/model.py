"""The network (a compact 2.5D MONAI UNet) and its weight files.

A weight file is a ``torch.save`` dict: ``{"state_dict": fp16 tensors, "config": {...},
"meta": {...}, "torchscript": bytes}``. ``config`` rebuilds the network; ``meta`` records
how it was trained (steps, seed, sources, date, spinemetrics version) and the input
convention (spacing, slice context), so inference never has to guess.

``torchscript`` is the same network traced by :func:`torch.jit.trace` (fp16 parameters,
made from the state dict when the file is written). Inference loads it instead of building
the MONAI network: importing MONAI takes 1.5–3 s, which was a third of a single-scan
``spinemetrics segment`` run on 2 cores; the traced module loads in ~0.1 s and gives
bit-identical outputs (tested). Training and calibration still rebuild the MONAI network
(``trainable=True``), and files without the key (older versions) load that way too.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from spinemetrics.atomic import atomic_path
from spinemetrics.errors import ModelError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CONFIG",
    "build_network",
    "save_weights",
    "load_weights",
    "count_parameters",
    "resolve_device",
    "widen_network",
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


def _unet_channel_maps(config: dict[str, Any]) -> dict[str, tuple[list[int], list[int]]]:
    """(input channels, output channels) of every convolution of the MONAI UNet built from
    ``config``, keyed by parameter-name prefix, as lists of channel *groups* (sizes).

    Groups matter where the decoder concatenates the skip connection with the upsampled
    features: widening both puts the new channels of each group at that group's end.
    """
    ch = list(config["channels"])
    n_in, n_out, depth = int(config["in_channels"]), int(config["out_channels"]), len(ch)
    maps: dict[str, tuple[list[int], list[int]]] = {}
    prefix = "model."
    for d in range(depth - 1):
        inc = [n_in] if d == 0 else [ch[d - 1]]
        down = prefix + "0."
        maps[down + "conv.unit0.conv"] = (inc, [ch[d]])
        maps[down + "residual"] = (inc, [ch[d]])
        below = [ch[d], ch[d + 1]] if d == depth - 2 else [ch[d], ch[d]]
        outc = [n_out] if d == 0 else [ch[d - 1]]
        up = prefix + "2."
        maps[up + "0.conv"] = (below, outc)
        maps[up + "1.conv.unit0.conv"] = (outc, outc)
        if d == depth - 2:
            bottom = prefix + "1.submodule."
            maps[bottom + "conv.unit0.conv"] = ([ch[d]], [ch[d + 1]])
            maps[bottom + "residual"] = ([ch[d]], [ch[d + 1]])
        prefix += "1.submodule."
    return maps


def _old_index(groups_old: list[int], groups_new: list[int]) -> torch.Tensor:
    """Positions in the widened layout of the channels of the original layout."""
    idx, start = [], 0
    for g_old, g_new in zip(groups_old, groups_new, strict=True):
        idx.extend(range(start, start + g_old))
        start += g_new
    return torch.tensor(idx, dtype=torch.long)


def widen_network(
    net: torch.nn.Module, config: dict[str, Any], channels: tuple[int, ...] | list[int],
    seed: int = 0,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A wider UNet that computes exactly what ``net`` computes (a warm start for training).

    Every convolution keeps its trained weights for the original channels; each new channel
    gets fresh random incoming weights and *zero* weight into every original channel, so the
    output is unchanged until training moves those weights (the first optimiser step
    already gives the zero weights a gradient, because the new channels are active).
    Instance norm has no parameters here and PReLU one per layer, so both carry over.

    Parameters
    ----------
    net : torch.nn.Module
        Trained MONAI UNet built by :func:`build_network` from ``config``.
    config : dict
        Its configuration.
    channels : sequence of int
        New channels per level, each at least the original.
    seed : int
        Seed of the random weights of the new channels.

    Returns
    -------
    (network, config) : the widened network (train mode, on the CPU) and its configuration.
    """
    old_cfg = {**DEFAULT_CONFIG, **config}
    if int(old_cfg["num_res_units"]) != 1:  # the layer names of _unet_channel_maps
        raise ModelError("widen_network supports UNets with num_res_units=1 (the shipped "
                         f"architecture), not {old_cfg['num_res_units']}")
    channels = [int(c) for c in channels]
    if len(channels) != len(old_cfg["channels"]) or any(
        c < o for c, o in zip(channels, old_cfg["channels"], strict=True)
    ):
        raise ModelError(
            f"cannot widen channels {list(old_cfg['channels'])} to {channels}: give as many "
            "levels, each at least as wide as before"
        )
    new_cfg = {**old_cfg, "channels": channels}
    torch.manual_seed(seed)
    wide = build_network(new_cfg)
    old_maps, new_maps = _unet_channel_maps(old_cfg), _unet_channel_maps(new_cfg)
    old_sd = net.state_dict()
    new_sd = wide.state_dict()
    done = set()
    for name, (in_old, out_old) in old_maps.items():
        in_new, out_new = new_maps[name]
        i_in, i_out = _old_index(in_old, in_new), _old_index(out_old, out_new)
        w_old, w = old_sd[name + ".weight"].float(), new_sd[name + ".weight"].clone()
        transposed = bool(getattr(wide.get_submodule(name), "transposed", False))
        if transposed:  # ConvTranspose2d stores (in, out, kh, kw)
            w = w.transpose(0, 1).clone()
            w_old = w_old.transpose(0, 1)
        w[i_out] = 0.0  # original outputs: nothing from the new inputs ...
        w[i_out[:, None], i_in[None, :]] = w_old  # ... and their trained weights
        new_sd[name + ".weight"] = w.transpose(0, 1).contiguous() if transposed else w
        b = new_sd[name + ".bias"].clone()
        b[i_out] = old_sd[name + ".bias"].float()
        new_sd[name + ".bias"] = b
        done.update({name + ".weight", name + ".bias"})
    for key, value in old_sd.items():
        if key not in done:  # PReLU slopes (one per layer)
            if new_sd[key].shape != value.shape:
                raise ModelError(f"cannot widen parameter {key}: unexpected shape")
            new_sd[key] = value.float().clone()
    wide.load_state_dict(new_sd)
    return wide.train(), new_cfg


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
    blob = {"state_dict": sd, "config": cfg, "meta": meta}
    traced = _traced_bytes(net, sd, {**DEFAULT_CONFIG, **cfg})
    if traced is not None:
        blob["torchscript"] = traced
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def _traced_bytes(net: torch.nn.Module, sd: dict, config: dict[str, Any]) -> bytes | None:
    """The network with the fp16-rounded weights of ``sd``, traced, as TorchScript bytes
    (None where this torch cannot trace it: the file then loads the MONAI way)."""
    twin = copy.deepcopy(net).cpu().float().eval()
    twin.load_state_dict({k: v.float() for k, v in sd.items()})
    example = torch.zeros(1, int(config["in_channels"]), 64, 64)
    try:
        with warnings.catch_warnings():
            # The tracer notes shape checks inside InstanceNorm that are constant for this
            # network (channel counts); torch.jit is deprecated in favour of torch.export,
            # whose loader imports sympy (3.7 s here, slower than MONAI itself).
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(twin, example, check_trace=False)
            buf = io.BytesIO()
            torch.jit.save(traced.half(), buf)
    except Exception as exc:  # noqa: BLE001 - any failure just means "no fast path"
        log.warning("could not trace the network (%s); the weight file loads via MONAI", exc)
        return None
    return buf.getvalue()


def _load_traced(data: bytes) -> torch.nn.Module | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(io.BytesIO(data), map_location="cpu").float()
    except Exception as exc:  # noqa: BLE001 - e.g. a torch without torch.jit: use MONAI
        log.debug("traced network not loadable (%s); building the MONAI network", exc)
        return None


def load_weights(
    path: str | Path, device: str = "cpu", *, trainable: bool = False
) -> tuple[torch.nn.Module, dict, dict]:
    """Load a weight file → ``(network in eval mode, config, meta)``.

    Parameters
    ----------
    path : path
        Weight file written by :func:`save_weights`.
    device : str
        Torch device for the network.
    trainable : bool
        Return the MONAI module (to fine-tune or re-save it). By default the file's traced
        TorchScript network is returned when it has one (same outputs, no MONAI import).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"model weights not found at {path}; reinstall spinemetrics or pass model= a "
            "weight file made by `spinemetrics train`"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        cfg = {**DEFAULT_CONFIG, **blob["config"]}
        net = None
        if not trainable and blob.get("torchscript"):
            net = _load_traced(blob["torchscript"])
        if net is None:
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
