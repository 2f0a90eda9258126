"""The evaluation and metric-science layer: the zero-shot evaluation protocol, metric depth from sparse
known depths, metric output files, and the evaluation data sets (``evaluation.datasets``).

May import: the ``zoo``, ``loading``, ``io`` and ``inference`` layers.
"""
