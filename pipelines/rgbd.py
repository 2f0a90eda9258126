"""RGBD export for pipeline results (the geometry lives in ``midas_diffusion.rgbd``)."""

from midas_diffusion.rgbd import (  # noqa: F401
    EXPORTERS,
    disparity_to_depth,
    export_depth_png16,
    export_glb,
    export_ply,
    export_side_by_side,
    unproject,
    unproject_equirectangular,
)
