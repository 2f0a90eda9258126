"""The documented path ``midas_diffusion.tiling``: a plain re-export of ``midas_diffusion.inference.tiling``
(and its ``fit_scale_shift``, from ``midas_diffusion.inference.alignment``)."""

from .inference.alignment import fit_scale_shift  # noqa: F401
from .inference.tiling import (  # noqa: F401
    TileGrid,
    blend_weights,
    count_tiles,
    estimate_tiled,
    tile_grid,
)

__all__ = [
    "TileGrid",
    "blend_weights",
    "count_tiles",
    "estimate_tiled",
    "fit_scale_shift",
    "tile_grid",
]
