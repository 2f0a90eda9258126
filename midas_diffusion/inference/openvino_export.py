"""Export a zoo model to OpenVINO IR and run it with the OpenVINO runtime (``pip install openvino``;
imported only here). MiDaS shipped this as ``openvino_midas_v21_small_256``; any zoo model works.

    export_openvino(est, "ov/")                          # writes ov/model.xml + model.bin (fp32)
    ov_est = openvino_estimator(est, "ov/")              # a DepthEstimator running OpenVINO
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
from torch import nn

from .openvino_backend import IR_NAME, compile_config, convert_network, import_openvino, openvino_core


def export_openvino(
    estimator_or_model,
    folder: Union[str, os.PathLike],
    input_size: Optional[Tuple[int, int]] = None,
    dynamic: bool = True,
) -> Path:
    """Convert the network to OpenVINO IR in ``folder`` (weights kept in fp32). ``input_size``
    (default: the model's network size) is the example input; ``dynamic=True`` lets batch, height
    and width vary (multiples of 32), as keep-aspect preprocessing needs."""
    ov = import_openvino()
    model = getattr(estimator_or_model, "model", estimator_or_model)
    if input_size is None:
        spec = getattr(estimator_or_model, "preprocess", None)
        if spec is None:
            raise ValueError("pass input_size=(height, width) when exporting a bare model")
        input_size = tuple(spec.net_size)
    ov_model = convert_network(model.float().eval().to("cpu"), input_size, dynamic)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(folder / IR_NAME), compress_to_fp16=False)
    return folder / IR_NAME


class OpenVINODepthModel(nn.Module):
    """A compiled OpenVINO model behind the zoo model's interface: standardized ``(B,3,H,W)`` ->
    ``(B,H,W)`` float32 (CPU tensors in and out). It has no torch parameters; ``.to()`` is a no-op
    for the CPU and float32, and anything else is refused. ``model_name`` (a zoo name) adds the
    compile properties that model needs (``openvino_backend.compile_config``)."""

    def __init__(self, path: Union[str, os.PathLike], device: str = "CPU", precision: str = "f32",
                 model_name: Optional[str] = None):
        super().__init__()
        path = Path(path)
        if path.is_dir():
            path = path / IR_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no OpenVINO model at {path}")
        # f32 by default: OpenVINO would otherwise pick bf16 on CPUs that have it
        self.compiled = openvino_core().compile_model(str(path), device, compile_config(model_name if device == "CPU" else None, precision))
        self.path = path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.compiled(x.detach().to("cpu", torch.float32).contiguous().numpy())
        return torch.from_numpy(result[self.compiled.output(0)].copy())

    def _apply(self, fn, recurse=True):  # .to(device/dtype): only what OpenVINO runs
        probe = fn(torch.zeros(()))
        if probe.device.type != "cpu" or probe.dtype != torch.float32:
            raise ValueError(f"an OpenVINO model runs on the CPU in float32, not {probe.device}/{probe.dtype}")
        return self


def openvino_estimator(estimator, folder: Union[str, os.PathLike], device: str = "CPU"):
    """A ``DepthEstimator`` with ``estimator``'s preprocessing whose network is the OpenVINO model
    exported to ``folder`` (exported now if the folder has none)."""
    from .estimator import DepthEstimator

    folder = Path(folder)
    if not (folder / IR_NAME).is_file():
        export_openvino(estimator, folder)
    network = OpenVINODepthModel(folder, device, model_name=estimator.spec.name)
    est = DepthEstimator(network, estimator.spec, estimator.preprocess, max_pixels=estimator.max_pixels)
    return est.set_backend("torch")  # the network is already OpenVINO's
