"""The command line: ``midas-diffusion depth | evaluate | models`` and the subcommands other packages add.

The top layer: it may import every other layer of ``midas_diffusion``; nothing in ``midas_diffusion``
imports it (the CLIs of ``midas_diffusion.pipelines`` and ``midas_diffusion.ui`` use its public
argument helpers in ``cli.args``).
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
