"""The DPT backbones: timm models composed (never patched) into the feature lists the decoder takes.

Part of the ``zoo`` layer: may import torch, timm and ``zoo.state_dicts``; nothing outside ``zoo``.
"""
