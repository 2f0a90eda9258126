"""The checkpoint-loading layer: official checkpoints and transformers layouts into zoo models, weight files
on disk, in the Hugging Face cache or downloaded with a checksum, and model construction (``factory``).

May import: the ``zoo`` layer (and torch, safetensors, huggingface_hub lazily).
"""
