"""The methods of :func:`eeopt.fit`, one module per family, registered by name."""

from __future__ import annotations

from eeopt.methods import baselines, beem, msdnet  # noqa: F401  (registers the methods)
from eeopt.methods._registry import METHODS, fit, method_names

__all__ = ["METHODS", "fit", "method_names"]
