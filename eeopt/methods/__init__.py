"""The methods of :func:`eeopt.fit`, one module per family, registered by name.

Each module declares its methods as :class:`~eeopt.methods.registry.MethodSpec` objects (options,
targets, direct settings, hooks) and keeps only its score, its candidate generation and its
policy class; :mod:`eeopt.methods.registry` holds the registry and the one fit skeleton.
"""

from __future__ import annotations

from eeopt.methods import baselines, beem, eenet, msdnet  # noqa: F401  (registers the methods)
from eeopt.methods.registry import METHODS, MethodSpec, candidates, fit, method_names, method_spec

__all__ = ["METHODS", "MethodSpec", "candidates", "fit", "method_names", "method_spec"]
