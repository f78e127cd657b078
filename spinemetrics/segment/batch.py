"""Segment many scans with the network and the CPU stages overlapped.

On a GPU the network takes about 0.1 s for a 512×512×15 volume, but reading, post-processing,
level naming and writing take about 1.4 s on the CPU (``docs/benchmarks.md``). Done one
after the other the GPU idles most of the time. Here worker processes read the next scans
and finish (post-process, name levels, write) the previous ones while the main process runs
the network, so a batch costs about max(network, CPU stages / workers) per scan.

Workers are *spawned* (not forked): the main process holds a CUDA context, which a forked
child must not inherit. Each worker runs single-threaded numpy/scipy code.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from spinemetrics.errors import SpinemetricsError

__all__ = ["FileOutcome", "segment_files", "output_paths"]

log = logging.getLogger(__name__)

@dataclass
class FileOutcome:
    """What happened to one input of :func:`segment_files`.

    Attributes
    ----------
    path : Path
        The input.
    outputs : tuple of Path
        ``(<stem>_seg.nii.gz, <stem>_levels.nii.gz)`` when written, else empty.
    warnings : list of str
    error : str or None
        One-line reason when the scan failed (nothing was written for it).
    """

    path: Path
    outputs: tuple[Path, ...] = ()
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def output_paths(image: Path, out_dir: Path) -> tuple[Path, Path]:
    """``(seg, levels)`` output files of one input: the stem without its image suffix."""
    from spinemetrics.pipeline import scan_stem

    stem = scan_stem(image)
    return out_dir / f"{stem}_seg.nii.gz", out_dir / f"{stem}_levels.nii.gz"


def _single_thread() -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)


def _read(path: Path, series: str | None):
    from spinemetrics.io import read_image

    return read_image(path, series=series)


def _finish_and_write(raw, warnings: list[str], seg_path: Path, levels_path: Path,
                      conus_prior: bool, threads: int = 1) -> list[str]:
    from spinemetrics.io import write_image
    from spinemetrics.segment.inference import finish_segmentation

    res = finish_segmentation(raw, warnings, conus_prior=conus_prior, threads=threads)
    write_image(res.seg, seg_path, labels=True)
    write_image(res.levels, levels_path, labels=True)
    return res.warnings


def _sequential(paths, out_dir, model, device, series, conus_prior, threads):
    from spinemetrics.segment.inference import predict_labels

    for path in paths:
        outs = output_paths(path, out_dir)
        try:
            raw, warnings = predict_labels(_read(path, series), device=device, model=model,
                                           threads=threads)
            yield FileOutcome(path, outs, _finish_and_write(
                raw, warnings, *outs, conus_prior, threads=threads))
        except SpinemetricsError as exc:
            yield FileOutcome(path, error=str(exc))


def _pipelined(paths, out_dir, model, device, series, conus_prior, threads, workers):
    from spinemetrics.segment.inference import predict_labels

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_single_thread) as pool:
        reads: deque[Future] = deque()
        ahead = iter(paths)

        def read_more() -> None:
            # Enough reads in flight to keep the network busy, not the whole batch in memory.
            while len(reads) < workers:
                nxt = next(ahead, None)
                if nxt is None:
                    return
                reads.append(pool.submit(_read, nxt, series))

        read_more()
        finishing: deque[tuple[Path, tuple[Path, Path], Future | None, str | None]] = deque()
        for path in paths:
            fut = reads.popleft()
            read_more()
            outs = output_paths(path, out_dir)
            try:
                img = fut.result()
                raw, warnings = predict_labels(img, device=device, model=model,
                                               threads=threads)
                finishing.append((path, outs, pool.submit(
                    _finish_and_write, raw, warnings, *outs, conus_prior), None))
            except SpinemetricsError as exc:
                finishing.append((path, outs, None, str(exc)))
            # Report in input order, as soon as the oldest scan is done. The network outruns
            # the CPU stages; reads queue behind finishing jobs in the one FIFO pool, which
            # already keeps it within about 2 scans per worker. The explicit bound keeps a
            # cohort of thousands from piling up label maps should reading move elsewhere.
            while finishing and (finishing[0][2] is None or finishing[0][2].done()
                                 or len(finishing) > 2 * workers):
                yield _outcome(*finishing.popleft())
        while finishing:
            yield _outcome(*finishing.popleft())


def _outcome(path: Path, outs: tuple[Path, Path], fut: Future | None,
             error: str | None) -> FileOutcome:
    if fut is None:
        return FileOutcome(path, error=error)
    try:
        return FileOutcome(path, outs, fut.result())
    except SpinemetricsError as exc:
        return FileOutcome(path, error=str(exc))


def segment_files(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    device: str = "auto",
    model: str | Path | tuple | None = None,
    series: str | None = None,
    conus_prior: bool = True,
    threads: int | None = None,
    workers: int = 0,
    progress: Callable[[FileOutcome], None] | None = None,
) -> Iterator[FileOutcome]:
    """Segment scans one after another; yield one :class:`FileOutcome` per input, in order.

    A scan that fails (unreadable, wrong geometry, …) is reported with its error and the
    batch goes on; outputs are written atomically, so a stopped batch leaves no partial
    file.

    Parameters
    ----------
    paths : sequence of path
        Image files or DICOM folders.
    out_dir : path
        Output folder (created).
    device : {"auto", "cpu", "cuda"}
    model : path or (network, config, meta), optional
        Weight file or loaded model (default: the shipped weights).
    series : str, optional
        DICOM series selector (see :func:`spinemetrics.io.read_image`).
    conus_prior : bool
        See :func:`spinemetrics.segment.segment`.
    threads : int, optional
        Torch threads of the network stage (one scan at a time: level naming too). Default:
        every available core, less one per worker process: torch threads beyond the free
        cores slow the network stage many-fold (docs/benchmarks.md, ninth session).
    workers : int
        Processes that read and finish scans while the network runs. 0: everything in this
        process, one scan at a time (best on CPU, where the network already uses every
        core). On a GPU, 4–8 keep the network busy.
    progress : callable, optional
        Called with each outcome as it is yielded.
    """
    from spinemetrics.segment.inference import available_threads, load_model

    paths = [Path(p) for p in paths]
    pipelined = bool(workers and workers > 0 and len(paths) > 1)
    if not threads:
        threads = max(1, available_threads() - (int(workers) if pipelined else 0))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model is None or not isinstance(model, tuple):
        model = load_model(device, model)
    if pipelined:
        gen = _pipelined(paths, out, model, device, series, conus_prior, threads, int(workers))
    else:
        gen = _sequential(paths, out, model, device, series, conus_prior, threads)
    for outcome in gen:
        if progress:
            progress(outcome)
        yield outcome
