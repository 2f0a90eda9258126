"""``python -m midas_diffusion.cli``, the same as the ``midas-diffusion`` command (also under ``accelerate launch -m``)."""

import sys

from .main import main

sys.exit(main())
