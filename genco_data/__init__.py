"""genco-data: the release-and-loader package of the GenCO creative-optimization dataset.

``import genco_data`` never imports torch (see :mod:`genco_data.torch_data` for the adapters).
"""
from __future__ import annotations

__version__ = "0.1.0"

from genco_data.components import COMPONENTS, PAD_TO  # noqa: E402
from genco_data.errors import GencoError  # noqa: E402

__all__ = ["__version__", "COMPONENTS", "PAD_TO", "GencoError"]
