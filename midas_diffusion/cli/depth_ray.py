"""``midas-diffusion depth --engine ray SHARDS -o OUT``: the shard path on a Ray cluster.

``ray.init()`` starts a local Ray, or joins the cluster ``RAY_ADDRESS`` names. Each of ``--actors``
actors (one GPU each where the cluster has GPUs and ``--device`` is not ``cpu``) loads the model once
and runs whole shards through ``depth_shards.process_shard``, so a shard comes out byte for byte as a
local run writes it, renamed into place when complete. Ray restarts a lost actor and retries its
shard; a shard that still fails is reported and left unwritten, for the next run to redo. On a
cluster, the workers need midas-diffusion installed and the shards and OUT on storage every node reaches.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import List, Sequence, Tuple

from .depth_shards import ShardResult, process_shard


class ShardWorker:
    """A Ray actor's state: one estimator, loaded when the actor starts (a model that cannot be loaded is
    kept as its message, for ``problem`` to hand the driver, rather than a crashed actor's traceback)."""

    def __init__(self, settings: dict, device: str):
        from ..inference.devices import resolve_device
        from .image_loop import load_estimator

        self.args = Namespace(**settings)
        self.est, self.error = None, None
        try:
            self.est = load_estimator(self.args, resolve_device(device))
        except (ValueError, FileNotFoundError, OSError) as exc:
            self.error = str(exc)

    def problem(self):
        return self.error

    def run(self, src: str, dest: str) -> ShardResult:
        return process_shard(self.est, Path(src), Path(dest), self.args, progress=False)


def run_on_ray(args, todo: Sequence[Tuple[Path, Path]]) -> List[ShardResult]:
    try:
        import ray
    except ImportError:
        raise ImportError("--engine ray needs Ray: pip install 'midas-diffusion[ray]'") from None
    started = not ray.is_initialized()
    if started:  # ray.init() reads RAY_ADDRESS itself and joins that cluster; else a local Ray starts
        ray.init() if os.environ.get("RAY_ADDRESS") else ray.init(include_dashboard=False)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpu = not args.device.startswith("cpu") and gpus > 0
        count = min(args.actors or (gpus if use_gpu else 1), len(todo))
        settings = {k: v for k, v in vars(args).items() if k != "func"}
        settings["no_progress"] = True
        worker = ray.remote(ShardWorker).options(num_cpus=1, num_gpus=1 if use_gpu else 0,
                                                 max_restarts=2, max_task_retries=2)
        idle = [worker.remote(settings, "cuda" if use_gpu else args.device) for _ in range(count)]
        problems = [p for p in ray.get([actor.problem.remote() for actor in idle]) if p]
        if problems:
            raise ValueError(problems[0])
        queue, pending, results = list(todo), {}, []
        while queue or pending:
            while idle and queue:
                actor, (src, dest) = idle.pop(), queue.pop(0)
                pending[actor.run.remote(str(src), str(dest))] = (src, actor)
            ready, _ = ray.wait(list(pending), num_returns=1)
            src, actor = pending.pop(ready[0])
            idle.append(actor)
            try:
                results.append(ray.get(ready[0]))
            except ray.exceptions.RayError as exc:
                print(f"error: {src}: failed on Ray ({str(exc).splitlines()[0]})", file=sys.stderr)
                results.append(ShardResult())
        return results
    finally:
        if started:
            ray.shutdown()
