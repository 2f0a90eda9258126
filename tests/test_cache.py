"""The one model cache: bounded, least recently used first, clearable, counted; shared by every front end."""

import gc
import threading
import weakref

import pytest
import torch

from midas_diffusion.inference.cache import ModelCache, default_cache, load_depth_model


class Model:
    """Stands in for a loaded model (weak-referenceable, like a DepthEstimator or a pipeline)."""

    def __init__(self, name):
        self.name = name


def test_lru_bounds_evicts_before_loading_and_counts():
    cache = ModelCache(limits={"pipeline": 1, "depth": 2})
    alive = []  # what exists while a load runs: the evicted model must already be gone

    def loader(name):
        def load():
            gc.collect()
            alive.append(sorted(m().name for m in held if m() is not None))
            return Model(name)
        return load

    held = []
    a = cache.get("depth", "a", loader("a"))
    held.append(weakref.ref(a))
    b = cache.get("depth", "b", loader("b"))
    held.append(weakref.ref(b))
    assert cache.get("depth", "a", loader("never")) is a  # a hit: "a" is now the most recent
    del a, b
    c = cache.get("depth", "c", loader("c"))  # evicts "b", the least recently used
    assert cache.keys("depth") == ["a", "c"] and held[1]() is None
    assert alive[-1] == ["a"]  # "b" was freed before "c" loaded
    counts = cache.counts()
    assert counts == {"pipeline": 0, "depth": 2, "loads": 3, "hits": 1, "evictions": 1}
    cache.get("pipeline", "p1", lambda: Model("p1"))
    cache.get("pipeline", "p2", lambda: Model("p2"))
    assert cache.keys("pipeline") == ["p2"] and cache.counts()["evictions"] == 2
    del c
    cache.clear()
    gc.collect()
    assert cache.counts()["depth"] == 0 and cache.counts()["pipeline"] == 0
    assert all(ref() is None for ref in held)


def test_weak_cache_keeps_nothing_alive():
    cache = ModelCache(weak=True)
    model = cache.get("depth", "k", lambda: Model("k"))
    assert cache.get("depth", "k", lambda: Model("other")) is model  # found while someone holds it
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None and cache.counts()["depth"] == 0
    assert cache.get("depth", "k", lambda: Model("again")).name == "again"  # loads again


def test_failed_load_caches_nothing_and_errors_are_clear():
    cache = ModelCache()

    def boom():
        raise ValueError("no such weights")

    with pytest.raises(ValueError, match="no such weights"):
        cache.get("depth", "x", boom)
    assert cache.counts()["depth"] == 0 and cache.counts()["loads"] == 0
    with pytest.raises(ValueError, match="unknown cache kind 'pipelines'"):
        cache.get("pipelines", "x", boom)
    with pytest.raises(ValueError, match="non-negative integer"):
        ModelCache(limits={"depth": -1})


def test_discard_and_evict():
    cache = ModelCache(limits={"pipeline": 2, "depth": 2})
    m = cache.get("depth", "a", lambda: Model("a"))
    cache.put("depth", "b", m)
    assert cache.discard(m) == 2 and cache.counts()["depth"] == 0
    cache.get("pipeline", "p", lambda: Model("p"))
    assert cache.evict("pipeline", "p") and not cache.evict("pipeline", "p")


def test_one_load_for_concurrent_requests():
    cache = ModelCache()
    loads = []
    barrier = threading.Barrier(4)

    def ask():
        barrier.wait()
        cache.get("depth", "k", lambda: loads.append(1) or Model("k"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == [1] and cache.counts()["hits"] == 3


def test_depth_models_are_keyed_by_file_content_and_move_back(tmp_path):
    """A file rewritten at the same path loads again; a cached model moved elsewhere is moved back."""
    from midas_diffusion import DepthEstimator

    path = tmp_path / "tiny"
    DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True).save_pretrained(path)
    cache = ModelCache()
    first = load_depth_model(str(path), device="cpu", cache=cache)
    assert load_depth_model(str(path), device="cpu", cache=cache) is first
    first.to(dtype=torch.bfloat16)  # someone else changed it...
    again = load_depth_model(str(path), device="cpu", cache=cache)
    assert again is first and again.device == torch.device("cpu")
    DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True).save_pretrained(path)  # rewritten
    assert load_depth_model(str(path), device="cpu", cache=cache) is not first
    assert cache.counts()["loads"] == 2 and cache.counts()["depth"] == 2
    with pytest.raises(ValueError, match="no depth model given"):
        load_depth_model("", cache=cache)


def test_a_zoo_name_reloads_when_its_weights_file_is_replaced(tmp_path):
    from midas_diffusion import create_model

    name = "dpt_levit_224"
    torch.save(create_model(name).state_dict(), tmp_path / f"{name}.pt")
    cache = ModelCache()
    first = load_depth_model(name, weights_dir=tmp_path, cache=cache)
    assert load_depth_model(name, weights_dir=tmp_path, cache=cache) is first
    torch.save(create_model(name).state_dict(), tmp_path / f"{name}.pt")  # new weights, same name
    assert load_depth_model(name, weights_dir=tmp_path, cache=cache) is not first


def test_default_cache_is_one_object():
    assert default_cache() is default_cache()
    assert default_cache().limits == {"pipeline": 1, "depth": 2}
