"""Reproducible training run of the shipped segmenter (same as ``spinemetrics train``).

Example (the shipped model)::

    OMP_NUM_THREADS=1 python analyses/train_segmenter.py --out runs/seg --phantoms 40 \
        --steps 20000 --seed 0

Writes ``runs/seg/{best,last}.pt`` (fp16 weights), ``ckpt.pt`` (resumable) and ``log.csv``.
"""

from __future__ import annotations

import sys

from spinemetrics.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
