import pytest
import torch

import midas_diffusion as md
from midas_diffusion.checkpoints import CheckpointError, check_fit, load_into, read_state_dict, to_model_layout

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
