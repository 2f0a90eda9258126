"""The architecture layer: model specs, the registry, configs, the DPT model and decoder, state-dict rules,
and the backbones (``zoo.backbones``).

May import: torch, timm and numpy only; nothing else of ``midas_diffusion``. Registering the zoo's
models is ``zoo.specs`` (MiDaS) and ``zoo.specs_depth_anything`` (Depth Anything V2), both imported by
the package root. How to add a backbone: the docstring of ``zoo.backbones.base``.
"""
