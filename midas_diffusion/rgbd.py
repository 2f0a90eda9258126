"""The documented path ``midas_diffusion.rgbd``: a plain re-export of ``midas_diffusion.io.rgbd``."""

from .io.rgbd import (  # noqa: F401
    EXPORTERS,
    EXPORT_FORMATS,
    as_arrays,
    as_depth_arrays,
    disparity_to_depth,
    export_depth_png16,
    export_glb,
    export_ply,
    export_side_by_side,
    focal_length,
    grid_faces,
    rgbd_points,
    unproject,
    unproject_equirectangular,
)

__all__ = [
    "EXPORTERS",
    "EXPORT_FORMATS",
    "as_arrays",
    "as_depth_arrays",
    "disparity_to_depth",
    "export_depth_png16",
    "export_glb",
    "export_ply",
    "export_side_by_side",
    "focal_length",
    "grid_faces",
    "rgbd_points",
    "unproject",
    "unproject_equirectangular",
]
