"""``midas-diffusion models``: the zoo as a table."""

from __future__ import annotations


def run_models(args) -> int:
    from ..inference.openvino_backend import auto_picks_openvino, openvino_installed
    from ..inference.precision import BF16_INACCURATE, CPU_BF16_ERROR, resolve_dtype
    from ..zoo.labels import predicts_label
    from ..zoo.registry import get_model_spec, list_models

    print(f"{'name':26s} {'input':>9s} {'params':>7s} {'fps@3090':>8s} {'bf16 mean|Δ|':>12s} {'cpu auto':>8s} {'backend':>8s}"
          f"  {'predicts':13s} {'licence':13s} description")
    for name in list_models():
        spec = get_model_spec(name)
        h, w = spec.net_size
        fps = f"{spec.reference_fps:g}" if spec.reference_fps else "-"
        error = CPU_BF16_ERROR.get(name)
        bf16 = f"{error.mean:.1e}" if error else "-"
        auto = "fp32" if name in BF16_INACCURATE else "bf16"
        backend = "openvino" if auto_picks_openvino(name, resolve_dtype("auto", "cpu", name)) else "torch"
        print(f"{name:26s} {h:>4d}x{w:<4d} {spec.params_m:>6.0f}M {fps:>8s} {bf16:>12s} {auto:>8s} {backend:>8s}"
              f"  {predicts_label(spec):13s} {spec.license:13s} {spec.description}")
    print("bf16 mean|Δ|: bf16 vs float32 on a bf16 CPU, mean difference of the normalized disparity (of its range); "
          "cpu auto: what dtype='auto' picks on a CPU with native bf16 (float32 elsewhere); "
          "backend: what backend='auto' runs on this machine's CPU in its auto dtype; "
          "predicts: relative (disparity, up to scale and shift) or metric (metres, up to the max depth); "
          "licence: of the model's weights (check it before commercial use)"
          + ("" if openvino_installed() else " (OpenVINO is not installed: torch)"))
    return 0
