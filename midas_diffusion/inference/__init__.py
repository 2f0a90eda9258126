"""The inference layer: ``DepthEstimator`` and what it runs on (preprocessing transforms, typed outputs,
precision rules, devices, the scale/shift fit, batching by network size, CUDA graphs, tiling, temporal
smoothing, the model cache, the OpenVINO export).

May import: the ``zoo``, ``loading`` and ``io`` layers.
"""
