"""What differs between the diffusers releases we support."""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch


def dtype_kwargs(dtype: Optional[torch.dtype]) -> Dict[str, Any]:
    """The dtype argument of diffusers' loaders: ``dtype`` where diffusers takes it (it warns on
    ``torch_dtype`` since mid-2026), ``torch_dtype`` on older releases."""
    if dtype is None:
        return {}
    from diffusers.utils import deprecation_utils

    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": dtype}
