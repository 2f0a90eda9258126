"""The pixels-and-files layer: reading images and maps, writing PNG/PFM/NPY, tar shards, video frames, RGBD exports.

May import: nothing else of ``midas_diffusion`` (numpy, torch, PIL; av and trimesh lazily).
"""
