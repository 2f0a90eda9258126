import pytest
import torch

import midas_diffusion as md
from midas_diffusion.loading.checkpoints import CheckpointError, check_fit, load_into, read_state_dict, to_model_layout

from reference import official_key_shapes


def _meta_model(name):
    spec = md.get_model_spec(name)
    with torch.device("meta"):
        return spec.build(spec.arch)


@pytest.mark.parametrize("name", md.list_models())
def test_official_keys_load_strictly_full_size(name):
    """Every key of the official checkpoint is loaded or dropped by a named rule; every tensor is filled."""
    model = _meta_model(name)
    official = official_key_shapes(name)
    converted = to_model_layout(official, model)
    assert check_fit(converted, model) is None
    load_into(model, official, model_name=name)  # strict, on meta: shapes and keys only


def test_an_extra_key_is_an_error_naming_it():
    official = official_key_shapes("dpt_levit_224")
    official["scratch.extra.weight"] = torch.empty(3, device="meta")
    with pytest.raises(CheckpointError, match="unexpected: scratch.extra.weight"):
        load_into(_meta_model("dpt_levit_224"), official, model_name="dpt_levit_224")


def test_a_missing_key_is_an_error_naming_it():
    official = official_key_shapes("dpt_swin2_tiny_256")
    del official["scratch.refinenet2.out_conv.bias"]
    with pytest.raises(CheckpointError, match="missing: scratch.refinenet2.out_conv.bias"):
        load_into(_meta_model("dpt_swin2_tiny_256"), official, model_name="dpt_swin2_tiny_256")


def test_checkpoint_of_another_model_names_both():
    official = official_key_shapes("dpt_swin2_tiny_256")
    with pytest.raises(CheckpointError, match="is for 'dpt_swin2_tiny_256', not for 'dpt_levit_224'"):
        load_into(_meta_model("dpt_levit_224"), official, model_name="dpt_levit_224")


def test_training_file_wrapper_and_formats(tmp_path):
    model = md.create_model("midas_v21_small_256", reduced=True)
    state = model.state_dict()
    torch.save({"model": state, "optimizer": {"lr": 1}}, tmp_path / "wrapped.pt")
    assert read_state_dict(tmp_path / "wrapped.pt").keys() == state.keys()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "m.safetensors"))
    again = md.create_model("midas_v21_small_256", checkpoint=tmp_path / "m.safetensors", reduced=True)
    for k, v in again.state_dict().items():
        assert torch.equal(v, state[k])


def test_corrupt_and_truncated_and_unsafe_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(tmp_path / "junk.pt")
    model = md.create_model("dpt_levit_224", reduced=True)
    torch.save(model.state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(tmp_path / "cut.pt")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_state_dict(tmp_path / "cut.safetensors")
    import datetime

    torch.save({"weights": model.state_dict(), "made": datetime.datetime(2020, 1, 1)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError):  # weights_only=True refuses arbitrary objects
        read_state_dict(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "absent.pt")


# ---------------------------------------------------------------------------------------------
# Any key order, any format: mapping is by name.
# ---------------------------------------------------------------------------------------------

ORDERS = {
    "sorted": lambda keys: sorted(keys),
    "reversed": lambda keys: list(reversed(keys)),
    "shuffled": lambda keys: [keys[i] for i in torch.randperm(len(keys), generator=torch.Generator().manual_seed(7))],
}


def _reordered(state_dict: dict, order: str) -> dict:
    return {k: state_dict[k] for k in ORDERS[order](list(state_dict))}


def _sources(converted: dict, official: dict) -> dict:
    """model key -> the official key whose tensor landed there (tensors told apart by identity)."""
    by_id = {id(v): k for k, v in official.items()}
    return {k: by_id.get(id(v)) for k, v in converted.items()}


@pytest.mark.parametrize("name", md.list_models())
def test_official_layout_loads_the_same_in_any_key_order(name):
    """Full-size, on meta: sorted, reversed and shuffled dicts load strictly, and every model tensor
    comes from the same checkpoint key as with the file's own order."""
    model = _meta_model(name)
    official = official_key_shapes(name)
    expected = _sources(to_model_layout(official, model), official)
    assert None not in expected.values()
    for order in ORDERS:
        reordered = _reordered(official, order)
        assert _sources(to_model_layout(reordered, model), official) == expected, order
        load_into(_meta_model(name), reordered, model_name=name)


@pytest.mark.parametrize("name", md.list_models())
def test_missing_num_batches_tracked_is_accepted(name):
    """As PyTorch's strict load_state_dict accepts it for BatchNorm (older files, rebuilt dicts)."""
    official = {k: v for k, v in official_key_shapes(name).items() if not k.endswith("num_batches_tracked")}
    model = load_into(_meta_model(name), _reordered(official, "sorted"), model_name=name)
    assert all(not v.is_meta for k, v in model.state_dict().items() if k.endswith("num_batches_tracked"))


def test_missing_num_batches_tracked_loads_real_weights():
    from reference import official_checkpoint

    official = official_checkpoint("midas_v21_small_256")
    model = md.create_model(
        "midas_v21_small_256", {k: v for k, v in official.items() if not k.endswith("num_batches_tracked")}
    )
    state = model.state_dict()
    assert sum(k.endswith("num_batches_tracked") for k in state) == 72
    assert all(int(v) == 0 for k, v in state.items() if k.endswith("num_batches_tracked"))
    assert torch.equal(state["scratch.output_conv.4.weight"], official["scratch.output_conv.4.weight"])


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_foreign_and_partial_checkpoints_fail_in_any_order(order):
    levit = official_key_shapes("dpt_levit_224")
    extra = _reordered({**levit, "scratch.extra.weight": torch.empty(3, device="meta")}, order)
    with pytest.raises(CheckpointError, match="unexpected: scratch.extra.weight"):
        load_into(_meta_model("dpt_levit_224"), extra, model_name="dpt_levit_224")
    nextvit = official_key_shapes("dpt_next_vit_large_384")
    del nextvit["pretrained.model.features.20.mlp.conv2.weight"]
    with pytest.raises(CheckpointError, match=r"missing: pretrained\.model\.stages\.2\.blocks\.13\.mlp\.fc2\.weight"):
        load_into(_meta_model("dpt_next_vit_large_384"), _reordered(nextvit, order), model_name="dpt_next_vit_large_384")
    swin = _reordered(official_key_shapes("dpt_swin2_tiny_256"), order)
    with pytest.raises(CheckpointError, match="is for 'dpt_swin2_tiny_256', not for 'dpt_levit_224'"):
        load_into(_meta_model("dpt_levit_224"), swin, model_name="dpt_levit_224")
    next_as_levit = _reordered(official_key_shapes("dpt_next_vit_large_384"), order)
    with pytest.raises(CheckpointError, match="is for 'dpt_next_vit_large_384', not for 'dpt_levit_224'"):
        load_into(_meta_model("dpt_levit_224"), next_as_levit, model_name="dpt_levit_224")


def _save(state_dict: dict, path, fmt: str) -> None:
    from safetensors.torch import save_file

    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save(state_dict, path)


@pytest.mark.parametrize("name", ["dpt_levit_224", "dpt_next_vit_large_384", "midas_v21_small_256"])
def test_official_files_load_whatever_their_key_order(name, tmp_path):
    """Full-size official layouts with real values (the recipe's), as .safetensors (keys sorted by the
    format) and as .pt in reversed order: every model tensor equals the file-order dict's. LeViT and
    Next-ViT were mapped by position before, and failed on safetensors copies of official files."""
    from reference import official_checkpoint

    official = official_checkpoint(name)
    reference_state = md.create_model(name, checkpoint=official).state_dict()
    for fmt, order in (("safetensors", "shuffled"), ("pt", "reversed")):
        path = tmp_path / f"{name}.{fmt}"
        _save(_reordered(official, order), path, fmt)
        state = md.create_model(name, checkpoint=path).state_dict()
        assert state.keys() == reference_state.keys()
        assert all(torch.equal(state[k], reference_state[k]) for k in state), fmt
        path.unlink()


@pytest.mark.parametrize("name", md.list_models())
def test_reduced_models_round_trip_through_every_format_and_order(name, tmp_path):
    """Every family, real tensors: .pt, .safetensors and dicts in any key order give the same model,
    whose computed (non-persistent) buffers equal those of a normal build."""
    source = md.create_model(name, reduced=True)
    state = source.state_dict()
    for order, fmt in (("sorted", "pt"), ("reversed", "safetensors"), ("shuffled", "dict")):
        checkpoint = _reordered(state, order)
        if fmt != "dict":
            _save(checkpoint, tmp_path / f"w.{fmt}", fmt)
            checkpoint = tmp_path / f"w.{fmt}"
        loaded = md.create_model(name, checkpoint=checkpoint, reduced=True)
        got = loaded.state_dict()
        assert all(torch.equal(got[k], v) for k, v in state.items()), (order, fmt)
        buffers = dict(loaded.named_buffers())
        for key, buffer in source.named_buffers():
            assert buffers[key].dtype == buffer.dtype and torch.equal(buffers[key], buffer), key


@pytest.mark.parametrize("name", md.list_models())
def test_every_zoo_model_is_built_without_weights_for_loading(name):
    """Every computed buffer of every zoo model can be computed after a meta build, so loading never
    makes random weights first (the fallback to a normal build is for older timm only)."""
    from midas_diffusion.loading.factory import _build_without_weights

    spec = md.get_model_spec(name)
    model = _build_without_weights(spec, spec.arch)
    assert all(p.is_meta for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Memory-lean loading: meta construction, tensors owned by the model.
# ---------------------------------------------------------------------------------------------


def test_load_model_takes_file_tensors_without_a_second_copy(tmp_path):
    from midas_diffusion.loading.factory import load_model

    state = md.create_model("dpt_swin2_tiny_256", reduced=True).state_dict()
    _save(state, tmp_path / "w.safetensors", "safetensors")
    model = load_model("dpt_swin2_tiny_256", tmp_path / "w.safetensors", reduced=True)
    assert not model.training
    tensors = list(model.parameters()) + list(model.buffers())
    assert all(t.device.type == "cpu" for t in tensors)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    assert all(t.data_ptr() % 64 == 0 for t in tensors if t.numel()), "weights must be aligned like the model's own"
    # nothing stays mapped: rewriting the file in place leaves the model as it was
    (tmp_path / "w.safetensors").write_bytes(b"\0" * (tmp_path / "w.safetensors").stat().st_size)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_a_callers_state_dict_is_copied_not_shared():
    from midas_diffusion.loading.factory import load_model

    state = md.create_model("dpt_levit_224", reduced=True).state_dict()
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    model = load_model("dpt_levit_224", state, reduced=True)
    from_half = load_model("dpt_levit_224", half, reduced=True)
    assert all(p.dtype == torch.float32 for p in from_half.parameters())  # cast to the model's dtype
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for v in state.values():
        v.zero_()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_an_owned_state_dict_is_taken_without_a_copy():
    from midas_diffusion.loading.checkpoints import OwnedStateDict
    from midas_diffusion.loading.factory import load_model

    state = {k: v.clone() for k, v in md.create_model("dpt_swin2_tiny_256", reduced=True).state_dict().items()}
    owned = OwnedStateDict(state)
    model = load_model("dpt_swin2_tiny_256", owned, reduced=True)
    ours = model.state_dict()
    shared = [k for k, v in owned.items() if k in ours and ours[k].data_ptr() == v.data_ptr()]
    assert len(shared) == len(ours) - sum(k.endswith("relative_position_index") or "relative_coords_table" in k
                                          for k in ours), "every loaded tensor is the model's own, not a copy"


def test_a_saved_component_loads_with_one_copy_of_the_weights(tmp_path, monkeypatch):
    """MidasDepthEstimator.from_pretrained reads the weights for this load only: nothing is cloned."""
    from midas_diffusion.loading import checkpoints
    from midas_diffusion.pipelines.components import MidasDepthEstimator

    est = MidasDepthEstimator.from_estimator(md.DepthEstimator.from_pretrained("midas_v21_small_256", reduced=True,
                                                                               dtype="float32"))
    est.save_pretrained(tmp_path)
    clones = []
    real = checkpoints._model_tensor
    monkeypatch.setattr(checkpoints, "_model_tensor",
                        lambda value, like, copy: clones.append(copy) or real(value, like, copy))
    loaded = MidasDepthEstimator.from_pretrained(tmp_path)
    assert clones and not any(clones)
    assert all(torch.equal(a, b) for a, b in zip(loaded.net.state_dict().values(), est.net.state_dict().values()))


def test_key_shapes_are_read_without_the_weights(tmp_path):
    from midas_diffusion.loading.checkpoints import read_key_shapes

    state = md.create_model("midas_v21_small_256", reduced=True).state_dict()
    for fmt in ("pt", "safetensors"):
        path = tmp_path / f"w.{fmt}"
        _save(state, path, fmt)
        shapes = read_key_shapes(path)
        assert shapes.keys() == state.keys()
        assert all(v.is_meta and v.shape == state[k].shape and v.dtype == state[k].dtype for k, v in shapes.items())
    assert md.DepthEstimator.from_pretrained(tmp_path / "w.pt", model="midas_v21_small_256", reduced=True)


def test_safetensors_reader_checks_every_entry(tmp_path):
    import json

    from safetensors.torch import save_file

    save_file({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(2, dtype=torch.bfloat16)},
              str(tmp_path / "ok.safetensors"))
    got = read_state_dict(tmp_path / "ok.safetensors")
    assert torch.equal(got["a"], torch.arange(6, dtype=torch.float32).reshape(2, 3)) and got["b"].dtype == torch.bfloat16
    data = (tmp_path / "ok.safetensors").read_bytes()
    (tmp_path / "short.safetensors").write_bytes(data[:-2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file .*'b'"):
        read_state_dict(tmp_path / "short.safetensors")
    header = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "lying.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    with pytest.raises(CheckpointError, match="not a valid safetensors file .*'a' does not fit"):
        read_state_dict(tmp_path / "lying.safetensors")


def test_no_import_cycle_between_checkpoints_and_the_transformers_converter():
    """The converter and the family rules import only the shared vocabulary, never checkpoints."""
    import ast
    from pathlib import Path

    import midas_diffusion

    root = Path(midas_diffusion.__file__).parent
    for path in [root / "loading" / "convert_transformers.py", root / "zoo" / "state_dicts.py", *sorted((root / "zoo" / "backbones").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in imported if m.split(".")[-1] in ("checkpoints", "factory", "estimator")], path
