"""eeopt: choose, check and explain early-exit policies for multi-exit neural networks.

Cache each exit's outputs once; eeopt fits exit thresholds (BEEM, EENet, MSDNet, PABEE and
confidence baselines), evaluates accuracy against cost, checks the theory and draws fronts.
"""

from eeopt import theory
from eeopt.compare import ComparisonTable, compare, compare_many
from eeopt.data import ExitData
from eeopt.engine import EvaluationResult
from eeopt.exceptions import BudgetUnreachableError
from eeopt.frontier import Front, heldout_front, oracle_front, pareto_front
from eeopt.methods import candidates, fit, method_names
from eeopt.policy import Policy, load_policy
from eeopt.quantile import quantile_thresholds

__version__ = "0.1.0"

# Submodules reached as attributes (``eeopt.plot``, ``eeopt.torch``) are imported on first use:
# ``import eeopt`` stays free of matplotlib's pyplot and of torch.
_LAZY_MODULES = ("datasets", "diagnostics", "io", "plot", "report", "risk", "tables", "torch")


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"eeopt.{name}")
    raise AttributeError(f"module 'eeopt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_MODULES))


__all__ = [
    "BudgetUnreachableError",
    "ComparisonTable",
    "EvaluationResult",
    "ExitData",
    "Front",
    "Policy",
    "candidates",
    "compare",
    "compare_many",
    "fit",
    "heldout_front",
    "load_policy",
    "method_names",
    "oracle_front",
    "pareto_front",
    "quantile_thresholds",
    "theory",
]
