"""`xvr animate`: replay a registration's trajectory as a GIF or MP4."""

from __future__ import annotations

import click
from tqdm import tqdm

from ._help import CONTEXT


@click.command(context_settings=CONTEXT)
@click.option("-i", "--inpath", type=click.Path(exists=True), required=True,
              help="A registration result folder (OUTDIR/<stem>) with result.json and trajectory.csv")
@click.option("-o", "--outpath", type=click.Path(), required=True, help="Output .gif or .mp4")
@click.option("--fps", type=int, default=10, show_default=True, help="Frames per second")
@click.option("--max_frames", type=int, default=60, show_default=True,
              help="Iterations shown at most (evenly spaced, first and last kept)")
@click.option("--max_size", type=int, default=256, show_default=True,
              help="Largest side of each panel in pixels")
@click.option("--device", type=str, default="auto", show_default=True, help="Compute device")
def animate(inpath, outpath, fps, max_frames, max_size, device):
    """Animate the trajectory of iterative optimization (X-ray | DRR | difference)."""
    from ..animate import compose, replay, write_animation

    frames = []
    for frame in tqdm(replay(inpath, max_frames, max_size, device), total=max_frames,
                      desc="rendering", ncols=90):
        frames.append(compose(frame))
    path = write_animation(frames, outpath, fps)
    click.echo(f"wrote {path} ({len(frames)} frames)")


COMMANDS = [animate]
