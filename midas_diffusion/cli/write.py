"""Writing one image's outputs: the formats of ``--format``, the 3D files of ``--export``, metric outputs."""

from __future__ import annotations


def all_exist(targets: dict) -> bool:
    return all(p.exists() for p in targets.values())


def write_outputs(targets: dict, disparity, raw, rgb=None, args=None, metres=None, about=None) -> None:
    """Write every requested output of one image; ``ply``/``glb`` (``--export``) need its RGB;
    ``metres`` (``(H,W)`` depth in metres: a metric model's own, or fitted by ``--metric-from``) feeds
    the ``metric-*`` outputs and makes the exports metric; ``about`` goes into ``NAME-metric.json``."""
    from ..io.writers import RAW_FORMATS, WRITERS

    metric = {fmt: path for fmt, path in targets.items() if fmt.startswith("metric-")}
    if metric:
        from ..evaluation.metric_files import write_metric

        if metres is None:
            raise ValueError("metric outputs were asked for without metric depth")
        write_metric(metric, metres, about)
    for fmt, path in targets.items():
        if fmt.startswith("metric-"):
            continue
        elif fmt in ("ply", "glb"):
            from ..io.rgbd import EXPORTERS

            geometry = dict(fov_deg=args.fov, near=args.near, far=args.far, panorama=args.panorama)
            if fmt == "glb":
                geometry["max_depth_jump"] = args.max_depth_jump
            if metres is not None:
                geometry["depth"] = metres.squeeze() if hasattr(metres, "squeeze") else metres
            from ..io.images import to_float_rgb

            pixels = to_float_rgb(rgb).permute(1, 2, 0).cpu().numpy()  # rgb: compact (C,H,W)
            EXPORTERS[fmt](path, pixels, disparity.squeeze().float().cpu(), **geometry)
        else:
            WRITERS[fmt](path, raw if fmt in RAW_FORMATS else disparity)
