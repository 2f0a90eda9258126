"""Data parallel runs: which share of the work this process does, under ``accelerate launch``.

A plain run is process 0 of 1. Under ``accelerate launch`` (``WORLD_SIZE`` > 1) the process state
comes from ``accelerate.PartialState`` (imported only then). Work is split by index striding over
the full, sorted input list (before existing outputs are checked), so every process agrees on the
split and a resumed run with another process count still does only what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessShard:
    index: int = 0
    count: int = 1
    local_index: int = 0
    device: Optional[str] = None  # accelerate's device for this process (cuda:N), if launched

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def take(self, items: Sequence[T]) -> List[T]:
        """This process's items: every ``count``-th from ``index``."""
        return list(items[self.index :: self.count])


def current_shard(cpu: bool = False) -> ProcessShard:
    """This process's place in the run. ``cpu=True`` for CPU processes (gloo), which accelerate
    only sets up when asked: ``accelerate launch --multi_gpu --num_processes N`` on a machine
    without GPUs starts N CPU processes (``--cpu`` alone starts one, unless through mpirun)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))) <= 1:
        return ProcessShard()
    from accelerate import PartialState

    state = PartialState(cpu=cpu)
    return ProcessShard(state.process_index, state.num_processes, state.local_process_index, str(state.device))


def process_device(requested: str, shard: ProcessShard) -> str:
    """This process's device name: under a launcher, ``cuda`` (``xpu``, ``npu``, ``mps``) without an
    index means this process's device; anything else is kept (``inference.devices.resolve_device``
    checks it)."""
    if shard.count > 1 and requested in ("cuda", "xpu", "npu", "mps") and shard.device:
        return shard.device
    return requested


def sum_counts(shard: ProcessShard, counts: Dict[str, float]) -> Dict[str, float]:
    """The sum of every process's ``counts`` (each process waits for the others)."""
    if shard.count <= 1:
        return dict(counts)
    from accelerate.utils import gather_object

    gathered = gather_object([counts])
    return {k: sum(c.get(k, 0) for c in gathered) for k in counts}


def finish(shard: ProcessShard) -> None:
    if shard.count > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
