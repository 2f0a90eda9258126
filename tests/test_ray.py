"""Ray: ``depth --engine ray`` and ``DepthAnnotator`` in ``map_batches`` on a local Ray (one session for the
module: Ray starts slowly on a small machine) give the plain CLI's bytes. Both sides run torch on one thread
(the float sums of a convolution depend on the thread count, and a 16-bit PNG can show it)."""

import pytest

ray = pytest.importorskip("ray")

import torch  # noqa: E402

import midas_diffusion as md  # noqa: E402
from midas_diffusion.cli import main  # noqa: E402
from midas_diffusion.io.shards import split_name  # noqa: E402

from reference import recipe_init_  # noqa: E402
from shard_fixtures import make_shards, members  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two tiny shards, a tiny saved model and the plain CLI's output shards for them."""
    root = tmp_path_factory.mktemp("ray")
    est = md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True)
    recipe_init_(est.model)
    model = str(est.save_pretrained(root / "model"))
    make_shards(root / "in")
    args = ["--model", model, "--no-progress", "--dtype", "float32", "--format", "png16,npy"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Ray workers (OMP_NUM_THREADS=1 above)
    try:
        assert main(["depth", str(root / "in" / "{00000..00001}.tar"), "-o", str(root / "plain"), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    return root, args


def test_engine_ray_writes_the_plain_clis_shards(local_ray, shards, capsys):
    root, args = shards
    out = root / "on_ray"
    assert main(["depth", str(root / "in" / "{00000..00001}.tar"), "-o", str(out), "--engine", "ray", *args]) == 0
    assert "shards: written 2, skipped 0 (finished), failed 0; images: done 6, failed 0" in capsys.readouterr().out
    for name in ("00000.tar", "00001.tar"):
        assert (out / name).read_bytes() == (root / "plain" / name).read_bytes(), name
    assert ray.is_initialized()  # the caller's Ray session is left running


def test_depth_annotator_in_map_batches_gives_the_clis_depth(local_ray, shards):
    """read_webdataset -> map_batches(DepthAnnotator) -> write_webdataset (``annotate_webdataset``): every
    sample's fields as the plain CLI wrote them (Ray names its own files and writes its own headers)."""
    from midas_diffusion.ray import annotate_webdataset

    root, args = shards
    annotate_webdataset([str(root / "in" / "00000.tar"), str(root / "in" / "00001.tar")], str(root / "map_batches"),
                        concurrency=1, batch_size=1, model=args[1], device="cpu", dtype="float32",
                        formats=("png16", "npy"))
    plain = {info.name: data for name in ("00000.tar", "00001.tar") for info, data in members(root / "plain" / name)}
    written = {info.name: data for tar in sorted((root / "map_batches").glob("*.tar")) for info, data in members(tar)}
    assert written == plain
    assert len({split_name(n)[0] for n in written}) == 6


def test_engine_ray_with_a_model_it_cannot_load_says_so_in_one_line(local_ray, shards, capsys):
    root, args = shards
    bad = ["--model", "no_such_model", *args[2:]]
    assert main(["depth", str(root / "in" / "00000.tar"), "-o", str(root / "never"), "--engine", "ray", *bad]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown model 'no_such_model'")
    assert not (root / "never").exists()
