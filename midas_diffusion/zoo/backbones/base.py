"""What every encoder shares: the config protocol, the timm factory call, computed buffers.

The backbone contract: how to add a DPT backbone
================================================

A zoo model is ``DepthModel(pretrained=<encoder>, scratch=<the one DPT decoder>)``. The decoder
(``zoo/decoder.py``) knows nothing of its backbone: it takes 3 or 4 NCHW feature levels, fine to
coarse, each half the size of the one before (DPT: 1/4, 1/8, 1/16, 1/32 of the input for a /16 ViT).
A new backbone is one module ``zoo/backbones/<family>.py`` and one spec per model; nothing else of
the package changes. It is what the MiDaS families and Depth Anything (``dinov2.py``) do.

1. **Spec.** A frozen dataclass ``<Family>EncoderConfig`` (the ``EncoderConfig`` protocol below):
   ``out_channels`` (the widths of the levels it returns), the timm model name, the hooks, and
   ``build()``, ``filter_checkpoint()``, ``reduced()``. Register a ``ModelSpec`` (``zoo/config.py``)
   per model with ``register_model``: ``arch=DepthModelConfig(encoder, DecoderConfig(in_channels=
   out_channels, ...), input_multiple=...)``, its ``PreprocessConfig`` (size, resize method,
   multiple, mean/std, how the prediction goes back: ``output_interpolation``), what it predicts
   (``"disparity"`` or ``"metres"`` with ``max_depth``), its weights and licence. Architecture
   differences are configuration: ``DecoderConfig`` fields (head size, activation, scale,
   fusion flags), never a copy of the decoder nor an if/elif on names.
2. **Feature hooks.** ``build()`` returns an ``nn.Module`` whose ``forward(x)`` gives the list of
   levels. Compose timm, never patch it: subclass ``TimmEncoder`` (it builds ``self.model`` from
   the config's timm name with ``create_timm_model``: no download) and call its parts (``patch_embed``, ``blocks``, ``stages``, ``forward_intermediates``)
   in your own ``forward``; no ``types.MethodType``, forward hooks or module-global state. The hook
   indices are data in the config (the original code's table). Where the original differs from timm
   (position-embedding resampling, readout), write that function in the family module and name the
   difference in its docstring. Token backbones turn tokens into levels with ``vit.Reassemble``
   (readout ``"project"``/``"ignore"``, 1x1 conv, resample x4/x2/x1/x0.5).
3. **Checkpoint rules.** Official files load by key *name*, never by position or order (``.pt``,
   ``.safetensors`` and dicts in any key order give the same model). ``filter_checkpoint(sd, module)``
   maps the official keys under ``pretrained.`` to your module's keys and drops only classifier heads
   and computed buffers, by explicit rules (``state_dicts.py``: ``rename_by_rules``, ``drop_keys``);
   your own ``state_dict()`` must pass through it unchanged. Keys outside ``pretrained.`` that the
   original names differently go in ``DepthModelConfig.checkpoint_rules`` (Depth Anything's
   ``depth_head.*``). Computed buffers are non-persistent and recomputable after a ``meta`` build
   (timm's ``init_non_persistent_buffers``). A family with transformers checkpoints defines a
   ``TransformersBackbone`` (``transformers_dpt.py``) and returns it from ``transformers_backbone()``.
   The loader is strict: anything not loaded or dropped by a rule is an error naming the keys.
4. **Tests.** The registry-driven tests (``tests/test_checkpoints.py``, ``test_registry.py``,
   ``test_estimator.py``) pick the new models up; add the original's key list and float64 outputs
   on recipe weights (``tests/reference_data``) and compare to ~1e-8 of the range.
"""

from __future__ import annotations

from typing import Any, Dict, List, Protocol, Tuple

import timm
import torch
from torch import nn


class EncoderConfig(Protocol):
    """An encoder config is a frozen dataclass that can build its ``pretrained`` module.

    ``build()`` returns an ``nn.Module`` whose ``forward(x)`` gives the feature levels (NCHW,
    fine to coarse) that the decoder's ``layerN_rn`` convs take; ``out_channels`` are their
    widths. ``filter_checkpoint`` maps an official MiDaS state dict (keys relative to
    ``pretrained.``) to this module's keys by name (never by position), dropping only classifier
    heads and computed buffers, by explicit rules. ``reduced()`` gives a tiny config of the same
    family for fast tests. Families with transformers DPT checkpoints also define
    ``transformers_backbone()`` (see ``transformers_dpt.py``).
    """

    out_channels: Tuple[int, ...]

    def build(self) -> nn.Module: ...

    def filter_checkpoint(self, state_dict: Dict[str, torch.Tensor], module: nn.Module) -> Dict[str, torch.Tensor]: ...

    def reduced(self) -> "EncoderConfig": ...


def create_timm_model(name: str, overrides: Tuple[Tuple[str, Any], ...] = (), **kwargs) -> nn.Module:
    """Build a randomly initialized timm model (never downloads: ``pretrained=False``)."""
    return timm.create_model(name, pretrained=False, **dict(overrides), **kwargs)


class TimmEncoder(nn.Module):
    """The base of an encoder around one timm model: ``self.config`` (its frozen config) and
    ``self.model``, built from the config's ``timm_name`` and ``timm_overrides`` without a classifier
    (checkpoint keys of the timm model start with ``model.``)."""

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.model = create_timm_model(config.timm_name, config.timm_overrides, num_classes=0)


def tokens_to_grid(tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """(B, N, C) -> (B, C, h, w)."""
    b, n, c = tokens.shape
    if n != grid[0] * grid[1]:
        raise ValueError(f"{n} tokens do not form a {grid[0]}x{grid[1]} grid")
    return tokens.transpose(1, 2).reshape(b, c, grid[0], grid[1])


FeatureList = List[torch.Tensor]


def float32_or_wider(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32, or float64 as it is: table resampling runs in at least float32
    (half-precision models too), and a float64 model stays exact in float64."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def computed_buffers(module: nn.Module) -> List[str]:
    """Names of the non-persistent buffers of ``module``: computed at construction, never in a
    checkpoint (relative position indices, attention masks, ...)."""
    persistent = module.state_dict().keys()
    return [name for name, _ in module.named_buffers() if name not in persistent]


def can_compute_buffers(module: nn.Module) -> bool:
    """True if every computed buffer belongs to a module that can compute it again after a build on
    the ``meta`` device (timm's ``init_non_persistent_buffers``, timm >= 1.0.20 for the zoo)."""
    owners = dict(module.named_modules())
    return all(hasattr(owners[name.rpartition(".")[0]], "init_non_persistent_buffers") for name in computed_buffers(module))


def compute_buffers(module: nn.Module, device: torch.device | str = "cpu") -> None:
    """Give every buffer still on ``meta`` (the computed ones, after a build on the meta device and
    a checkpoint load) real memory on ``device``, then let its timm module compute its values, as
    construction would have. Raises ``RuntimeError`` naming a buffer no module can compute."""
    owners = dict(module.named_modules())
    pending = [name for name, buffer in module.named_buffers() if buffer.is_meta]
    for name in pending:
        owner_name, _, attr = name.rpartition(".")
        owner = owners[owner_name]
        owner._buffers[attr] = torch.empty_like(owner._buffers[attr], device=device)
    for owner_name in dict.fromkeys(name.rpartition(".")[0] for name in pending):
        owner = owners[owner_name]
        if not hasattr(owner, "init_non_persistent_buffers"):
            raise RuntimeError(f"{owner_name}: cannot compute its buffers after a build on the meta device")
        owner.init_non_persistent_buffers()
