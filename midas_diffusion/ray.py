"""Depth on Ray Data: ``DepthAnnotator``, a callable class for ``Dataset.map_batches``.

    import ray
    from midas_diffusion.ray import DepthAnnotator

    ds = ray.data.read_webdataset("s3://bucket/shards/{00000..00099}.tar", decoder=None)  # keep the bytes
    ds = ds.map_batches(DepthAnnotator, fn_constructor_kwargs=dict(model="dpt_hybrid_384"),
                        concurrency=4, num_gpus=1, batch_size=64)
    ds.write_webdataset("s3://bucket/rgbd/", encoder=None)  # the columns are bytes already

Each actor loads the model once (on the GPU Ray gave it, with ``num_gpus=1``) and returns every input
column plus ``depth.png`` (16-bit), the other ``formats`` and ``midas.json``; images of equal network
size share a forward pass. The work itself is ``midas_diffusion.inference.annotator.DepthAnnotator``,
which needs no Ray; this module (and ``midas-diffusion depth --engine ray``) is the only code that
imports ``ray``: ``pip install 'midas-diffusion[ray]'``.
"""

from __future__ import annotations

from .inference.annotator import DepthAnnotator

__all__ = ["DepthAnnotator", "annotate_webdataset"]


def annotate_webdataset(paths, output: str, *, concurrency: int = 1, num_gpus: float = 0, batch_size: int = 32,
                        **annotator_kwargs) -> None:
    """``read_webdataset(paths)`` -> ``DepthAnnotator(**annotator_kwargs)`` -> ``write_webdataset(output)``:
    ``batch_size`` rows per call, run through the network together where of one size (Ray names the written
    files; ``midas-diffusion depth --engine ray`` keeps the shard names and writes each atomically)."""
    import ray

    ds = ray.data.read_webdataset(paths, decoder=None)
    ds = ds.map_batches(DepthAnnotator, fn_constructor_kwargs={"batch_size": batch_size, **annotator_kwargs}, concurrency=concurrency,
                        num_gpus=num_gpus, batch_size=batch_size)
    ds.write_webdataset(output, encoder=None)
