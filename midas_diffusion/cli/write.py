"""Writing one image's outputs: the formats of ``--format``, the 3D files of ``--export``, metric outputs."""

from __future__ import annotations


def all_exist(targets: dict) -> bool:
    return all(p.exists() for p in targets.values())


def write_outputs(targets: dict, disparity, raw, rgb=None, args=None, metric=None) -> None:
    """Write every requested output of one image; ``ply``/``glb`` (``--export``) need its RGB;
    ``metric`` (a ``MetricDepth``, from ``--metric-from``) feeds ``metric-*`` outputs and the exports."""
    from ..io.writers import RAW_FORMATS, WRITERS

    for fmt, path in targets.items():
        if fmt.startswith("metric-"):
            from ..evaluation.metric_files import write_metric

            write_metric({fmt: path}, metric)
        elif fmt in ("ply", "glb"):
            from ..io.rgbd import EXPORTERS

            geometry = dict(fov_deg=args.fov, near=args.near, far=args.far, panorama=args.panorama)
            if fmt == "glb":
                geometry["max_depth_jump"] = args.max_depth_jump
            if metric is not None:
                geometry["depth"] = metric.depth
            from ..io.images import to_float_rgb

            pixels = to_float_rgb(rgb).permute(1, 2, 0).cpu().numpy()  # rgb: compact (C,H,W)
            EXPORTERS[fmt](path, pixels, disparity.squeeze().float().cpu(), **geometry)
        else:
            WRITERS[fmt](path, raw if fmt in RAW_FORMATS else disparity)
