"""Share many inputs among ``torchrun`` ranks: each rank registers its own, one summary at the end.

The inputs are planned over all ranks alike (the same sorted list, the same output folders as a
single process); rank ``r`` of ``world`` then takes the inputs ``r, r + world, r + 2 world, ...``
and works on its own device (``cuda:LOCAL_RANK`` on GPUs, else the device asked for). The ranks
talk over gloo, whatever the device: they only wait for each other and gather small summaries.
In a single process (no torchrun) this is rank 0 of 1 and nothing is shared.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import torch

from ... import distributed

T = TypeVar("T")


class _WithResult(Protocol):
    """A dataclass with a ``result`` (:class:`.one_xray.Written`, :class:`.track_io.FrameWritten`)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def result(self) -> Any: ...


W = TypeVar("W", bound=_WithResult)


@dataclass(frozen=True)
class Shard:
    """This process's part of a run: rank `rank` of `world`, computing on `device`."""

    rank: int = 0
    world: int = 1
    device: str | None = None

    @property
    def part(self) -> tuple[int, int]:
        """``(rank, world)``, as :func:`~napari_xvr.register.workflows.pipeline.register_files` takes it."""
        return self.rank, self.world

    @property
    def tag(self) -> str:
        """The prefix of this rank's progress lines ('' in a single process)."""
        return f"[rank {self.rank}/{self.world}] " if self.world > 1 else ""


@dataclass(frozen=True)
class Outcome:
    """What a rank tells the others of a result it wrote: enough for the summary and ``--exit_on``."""

    verdict: dict | None


def share(n: int, rank: int, world: int) -> range:
    """The indices of `n` planned inputs that rank `rank` of `world` takes (round-robin)."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} of {world}: need 0 <= rank < world")
    return range(rank, n, world)


def take(items: Sequence[T], part: tuple[int, int] | None = None) -> list[T]:
    """This rank's share of `items` (all of them in a single process), for ``xvr track`` and others.

    `part` is ``(rank, world)``; by default this process's place in the torchrun group. Use it as
    ``xvr register`` does: every rank plans over all items (e.g. each sequence's output folder,
    so names are decided as in one process) and checks them, waits for the others, takes its
    share of the planned pairs, works on them on its device, then gathers the results::

        shard = join(device)
        planned = list(zip(sequences, plan_outputs(sequences, outpath)))
        check(planned)
        distributed.barrier()  # every rank planned and checked before any writes
        written = [track_one(seq, folder, shard.device) for seq, folder in take(planned, shard.part)]
        everything = gather_written(written)  # on every rank, in the order of `sequences`
        leave()
    """
    rank, world = part or (distributed.rank(), distributed.world_size())
    return [items[i] for i in share(len(items), rank, world)]


def merge(per_rank: Sequence[Sequence[T]]) -> list[T]:
    """The ranks' shares put back in the planned order (the inverse of :func:`take`)."""
    missing: Any = object()  # a filler no item is
    rows = itertools.zip_longest(*per_rank, fillvalue=missing)
    return [item for row in rows for item in row if item is not missing]


def join(device: str | None = None) -> Shard:
    """Join the torchrun group (gloo) when launched by torchrun; this process's :class:`Shard`.

    Under torchrun the device is picked per rank (:func:`rank_device`); in a single process it
    stays `device` as given.
    """
    if not distributed.init_from_env(backend="gloo"):
        return Shard(device=device)
    return Shard(distributed.rank(), distributed.world_size(), str(rank_device(device)))


def rank_device(name: str | None = None) -> torch.device:
    """This rank's device for `name`: on CUDA (cuda, cuda:N or auto on GPUs) the GPU LOCAL_RANK
    names, modulo the GPUs here (more ranks than GPUs share them); otherwise the device itself."""
    from ...device import pick_device

    device = pick_device(name)
    if device.type != "cuda":
        return device
    index = int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def ready_share(n: int, part: tuple[int, int]) -> range:
    """This rank's indices of `n` planned inputs, once every rank has planned and checked them
    all (with several ranks): no rank then takes another's fresh result for an existing one, and
    a bad input stops every rank before any registration."""
    if part[1] > 1:
        distributed.barrier()
    return share(n, *part)


def gather_written(written: Sequence) -> list:
    """Every rank's written results (:class:`Written`-like: ``path`` and ``result.verdict``), in
    the planned order, on every rank; under torchrun each comes with an :class:`Outcome` as its
    result (a result's images and tensors stay on its rank)."""
    return gather_brief(written, outcome)


def outcome(written: W) -> W:
    """`written` (a dataclass with a ``result``) with its result reduced to an :class:`Outcome`."""
    return dataclasses.replace(written, result=Outcome(written.result.verdict))


def gather_brief(items: Sequence[T], brief: Callable[[T], T]) -> list[T]:
    """Every rank's `items`, in the planned order, on every rank, each made small by `brief`
    to travel (e.g. :func:`outcome`); in a single process the items themselves."""
    if not distributed.active():
        return list(items)
    return merge(distributed.gather_objects([brief(item) for item in items]))


def leave() -> None:
    """Leave the torchrun group (nothing in a single process)."""
    distributed.shutdown()
