"""The architecture layer: model specs, the registry, configs, the DPT model and decoder, state-dict rules,
and the backbones (``zoo.backbones``).

May import: torch, timm and numpy only; nothing else of ``midas_diffusion``. Registering the zoo's
models is ``zoo.specs`` (imported by the package root).
"""
