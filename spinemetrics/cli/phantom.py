"""``spinemetrics phantom -o DIR``: render analytic lumbar phantoms with their exact truth."""

from __future__ import annotations

from pathlib import Path

import typer


def _triple(text: str, name: str) -> tuple[float, float, float]:
    from spinemetrics.cli import fail

    try:
        vals = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3:
        fail(f"--{name} needs three comma-separated numbers (e.g. 4,0.5,0.5), got {text!r}")
    return vals  # type: ignore[return-value]


def phantom_cmd(
    out: Path = typer.Option(..., "-o", "--out", help="Output folder.", show_default=False),
    seed: int = typer.Option(0, "--seed", help="Seed of the parameters and the image noise."),
    count: int = typer.Option(1, "--count", min=1, help="Number of phantoms (seeds seed…)."),
    spacing: str = typer.Option(
        "1,1,1",
        "--spacing",
        help="Voxel size in mm along x (LR), y (AP), z (SI); clinical sagittal: 4,0.5,0.5.",
    ),
    rotation: str = typer.Option(
        "0,0,0", "--rotation", help="Rotation of the anatomy about x, y, z in degrees (≤ ±20)."
    ),
    contrast: str = typer.Option("T2", "--contrast", help="T2, T1 or STIR."),
    orientation: str = typer.Option(
        "RAS", "--orientation", help="Axis codes of the written arrays, e.g. RAS, PIR, LPS."
    ),
    lumbar_count: int = typer.Option(5, "--lumbar-count", help="4, 5 or 6 lumbar vertebrae."),
    top: str = typer.Option("T12", "--top", help="Most cranial vertebra: T11, T12 or L1."),
    no_image: bool = typer.Option(False, "--no-image", help="Skip the synthetic MR image."),
    tissue: bool = typer.Option(False, "--tissue", help="Also write the tissue sub-label map."),
) -> None:
    """Render phantoms: <stem>_image/_seg/_levels.nii.gz and <stem>_truth.csv per seed.

    The label maps follow the contract (§2 structures, §3 levels); the truth table holds the
    exact §5 values computed from the phantom's parameters (not from voxels), so that
    ``spinemetrics measure <stem>_seg.nii.gz --levels <stem>_levels.nii.gz`` can be checked
    against it. The stem is ``phantom<seed>``.
    """
    from spinemetrics.cli import fail
    from spinemetrics.cli._progress import stderr_console
    from spinemetrics.io import write_image, write_table
    from spinemetrics.phantom import make_phantom, random_params

    sp = _triple(spacing, "spacing")
    rot = _triple(rotation, "rotation")
    if max(abs(r) for r in rot) > 20.0:
        fail(f"--rotation {rotation}: keep each angle within ±20 degrees")
    out.mkdir(parents=True, exist_ok=True)
    console = stderr_console()
    seeds = range(seed, seed + count)
    with console.status("rendering phantoms") as status:
        for i, s in enumerate(seeds, 1):
            status.update(f"rendering phantom {i}/{count} (seed {s})")
            params = random_params(seed=s, lumbar_count=lumbar_count, top=top)
            ph = make_phantom(
                params,
                spacing=sp,
                rotation_deg=rot,
                contrast=contrast,
                seed=s,
                with_image=not no_image,
                orientation=orientation,
            )
            stem = f"phantom{s:04d}"
            if ph.image is not None:
                write_image(ph.image, out / f"{stem}_image.nii.gz", labels=False)
            write_image(ph.seg, out / f"{stem}_seg.nii.gz", labels=True)
            write_image(ph.levels, out / f"{stem}_levels.nii.gz", labels=True)
            if tissue:
                write_image(ph.tissue, out / f"{stem}_tissue.nii.gz", labels=True)
            write_table(ph.truth, out / f"{stem}_truth.csv")
            typer.echo(str(out / f"{stem}_seg.nii.gz"))


def register(app: typer.Typer) -> None:
    app.command("phantom")(phantom_cmd)
