"""The documented path ``midas_diffusion.tiling``: a plain re-export of ``midas_diffusion.inference.tiling``."""

from .inference.tiling import (  # noqa: F401
    TileGrid,
    blend_weights,
    count_tiles,
    estimate_tiled,
    fit_scale_shift,
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
