"""`xvr animate`: replay a registration's trajectory as a GIF or MP4."""

from __future__ import annotations

import click
from tqdm import tqdm

from ._help import CONTEXT, UserPath


@click.command(context_settings=CONTEXT)
@click.option(
    "-i",
    "--inpath",
    type=UserPath(exists=True),
    required=True,
    help="A registration result folder (OUTDIR/<stem>) with result.json and "
    "trajectory.csv, or a track folder (the OUTDIR of `xvr track`)",
)
@click.option("-o", "--outpath", type=UserPath(), required=True, help="Output .gif or .mp4")
@click.option("--fps", type=int, default=10, show_default=True, help="Frames per second")
@click.option(
    "--max_frames",
    type=int,
    default=60,
    show_default=True,
    help="Iterations (of a track: frames) shown at most (evenly spaced, first and last kept)",
)
@click.option(
    "--max_size", type=int, default=256, show_default=True, help="Largest side of each panel in pixels"
)
@click.option("--device", type=str, default="auto", show_default=True, help="Compute device")
@click.option(
    "--overwrite/--no-overwrite",
    default=False,
    help="Replace -o if it exists (otherwise it is refused before any rendering)",
)
def animate(inpath, outpath, fps, max_frames, max_size, device, overwrite):
    """Animate the trajectory of iterative optimization (X-ray | DRR | difference), or a
    tracked sequence (X-ray | DRR | difference | overlay, one frame per tracked frame)."""
    from ..animate import animate_result, animate_track, is_track

    bar = tqdm(desc="rendering", ncols=90, unit="frame")

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        make = animate_track if is_track(inpath) else animate_result
        path = make(inpath, outpath, fps, max_frames, max_size, device, overwrite, progress)
    finally:
        bar.close()
    click.echo(f"wrote {path} ({bar.n} frames)")


COMMANDS = [animate]
