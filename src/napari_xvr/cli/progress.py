"""Show engine events in a terminal: progress bars and lines by verbosity."""

from __future__ import annotations

import click
from tqdm import tqdm

from ..register.checks.mirror import MirrorCheck
from ..register.checks.setup_check import SetupCheck
from ..register.checks.trust import verdict_text, verdict_text_of
from ..register.events import Done, Stage, Step


def run_with_progress(events, verbose: int = 1, tag: str = "") -> list:
    """Consume a `register_files` generator; return the results written.

    With a `tag` (a rank of a sharded run, :func:`run_sharded`), every line starts with it, and
    there are no bars (several processes' bars garble one terminal) and no summary.
    """
    from ..register.workflows.one_xray import Retrying, Written
    from ..register.workflows.pipeline import XrayStarted

    bar, written, prefix = None, [], ""
    try:
        for event in events:
            if isinstance(event, XrayStarted):
                named = event.path.name if event.path is not None else "X-ray"
                prefix = f"[{event.index + 1}/{event.total}] {named}"
                if verbose >= 1:
                    _line(tag, prefix)
            elif isinstance(event, Stage):
                if bar is not None:
                    bar.close()
                if verbose >= 2:
                    starts = f", from {event.n_starts} starts" if event.n_starts > 1 else ""
                    _line(
                        tag,
                        f"  stage {event.index}/{event.n_stages}: 1/{event.scale:g} "
                        f"detector ({event.height}x{event.width} px{starts})",
                    )
                bar = tqdm(
                    total=event.max_itrs,
                    desc=f"  stage {event.index}",
                    ncols=90,
                    leave=verbose >= 2,
                    disable=verbose < 1 or bool(tag),
                )
            elif isinstance(event, Step):
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"sim={event.similarity:.4f}")
                if verbose >= 3:
                    r1, r2, r3, tx, ty, tz = event.params
                    _line(
                        tag,
                        f"    itr {event.itr:4d} sim {event.similarity:.5f} "
                        f"rot {r1:7.2f} {r2:7.2f} {r3:7.2f} xyz {tx:7.1f} {ty:7.1f} "
                        f"{tz:7.1f} {_rates(event)}",
                    )
            elif isinstance(event, Done):
                if bar is not None:
                    bar.close()
                    bar = None
            elif isinstance(event, Retrying):
                if verbose >= 1:
                    _line(
                        tag,
                        f"  {verdict_text_of(event.verdict)}: {event.what}",
                    )
            elif isinstance(event, MirrorCheck | SetupCheck):
                if event.warns:  # shown whatever the verbosity: the result is suspect
                    click.echo(
                        f"{tag}  Warning: {event.message(prefix.split('] ')[-1] or 'the X-ray')}", err=True
                    )
            elif isinstance(event, Written):
                written.append(event)
                if verbose >= 1:
                    res = event.result
                    sim = "n/a" if res.similarity is None else f"{res.similarity:.4f}"
                    click.echo(
                        f"{tag}  -> {event.path}  similarity {sim}, {res.iterations} itrs, "
                        f"{res.runtime_s:.1f} s; {verdict_text(res)}"
                    )
    finally:
        if bar is not None:
            bar.close()
    if verbose >= 1 and written and not tag:
        click.echo(summary(written))
    return written


def run_sharded(events, verbose: int, shard, progress=None, gather=None, summarize=None) -> list:
    """`progress` on this rank of a :class:`~napari_xvr.register.workflows.shard.Shard`, then every rank's
    results gathered (on every rank, for ``--exit_on``) by `gather`; rank 0 prints the one
    summary, `summarize` of them all. By default `xvr register`'s: :func:`run_with_progress`,
    :func:`~napari_xvr.register.workflows.shard.gather_written` and :func:`summary`.

    In a single process this is `progress` (which prints its own summary).
    """
    from ..distributed import barrier
    from ..register.workflows.shard import gather_written, leave

    progress, gather = progress or run_with_progress, gather or gather_written
    summarize = summarize or summary
    if shard.world == 1:
        return progress(events, verbose)
    try:
        written = gather(progress(events, verbose, shard.tag))
        if verbose >= 1 and written and shard.rank == 0:
            click.echo(summarize(written))
        barrier()  # torchrun stops every rank when one exits non-zero: not before the summary
    finally:
        leave()
    return written


def verdict_counts(written) -> dict:
    """How many of `written` (each with a ``result.verdict``) are ok, suspect and failed."""
    from ..register.checks.trust import SEVERITY

    counts = dict.fromkeys(SEVERITY, 0)
    for item in written:
        status = (item.result.verdict or {}).get("status")
        if status in counts:
            counts[status] += 1
    return counts


def summary(written, noun: str = "result") -> str:
    """One line: how many results (or frames, ...) are ok, suspect and failed."""
    counts = verdict_counts(written)
    return (
        f"{len(written)} {noun}(s): {counts['ok']} ok, {counts['suspect']} suspect, {counts['failed']} failed"
    )


def _line(tag: str, text: str) -> None:
    """A line above the bar; a rank's (`tag`) in one write, so ranks' lines never mix."""
    if tag:
        click.echo(f"{tag}{text}")
    else:
        tqdm.write(text)


def _rates(event: Step) -> str:
    if event.damping is not None:
        return f"damping {event.damping:.1e}"
    return f"lr {event.lr_rot:.1e}/{event.lr_xyz:.1e}"
