"""Show training events in a terminal: a tqdm bar with the running losses."""

from __future__ import annotations

import click
from tqdm import tqdm

from ..train.loop import Checkpointed, TrainDone, TrainStarted, TrainStep


def show_training(events, verbose: int = 1) -> TrainDone | None:
    """Consume a training generator; return its TrainDone."""
    bar, done = None, None
    try:
        for event in events:
            if isinstance(event, TrainStarted):
                for note in event.notes:
                    click.echo(f"Note: {note}", err=True)
                if verbose >= 1:
                    click.echo(
                        f"Training on {event.device} ({event.n_parameters / 1e6:.1f} M parameters) "
                        f"-> {event.outpath}"
                    )
                bar = tqdm(
                    total=event.n_total_itrs,
                    initial=event.start_itr,
                    desc="Training",
                    ncols=110,
                    disable=verbose < 1,
                )
            elif isinstance(event, TrainStep):
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(
                        f"loss={event.loss:.3f} ncc={event.ncc:.3f} geo={event.geo:.1f} "
                        f"dice={event.dice:.3f} lr={event.lr:.1e}"
                    )
            elif isinstance(event, Checkpointed):
                if verbose >= 2:
                    tqdm.write(f"Saved checkpoint {event.path} (resumes at itr {event.itr})")
            elif isinstance(event, TrainDone):
                done = event
                if bar is not None:
                    bar.close()
                    bar = None
                if verbose >= 1:
                    state = "stopped" if event.stopped else "finished"
                    click.echo(
                        f"Training {state} at itr {event.itr} in {event.elapsed_s:.1f} s; "
                        f"last checkpoint {event.path}"
                    )
    finally:
        if bar is not None:
            bar.close()
    return done
