"""PyTorch adapter: extract exit outputs from a model, measure exit costs, run early exit.

Only this subpackage imports torch; ``import eeopt`` never does. Install it with
``pip install eeopt[torch]``.

    import eeopt, eeopt.torch as et
    model = et.MultiExitModel(stages, heads)
    costs = et.measure_exit_costs(model, example_batch)
    val = et.collect_logits(model, val_loader, costs=costs.seconds)
    policy = eeopt.fit(val, method="maxprob", budget=0.5 * costs.seconds[-1])
    run = et.run_early_exit(model, policy, test_loader)
    run.predictions, run.exit_index, run.seconds
"""

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "eeopt.torch needs PyTorch, which is not installed: pip install eeopt[torch] "
        "(or install a torch build for your platform from pytorch.org first)."
    ) from exc

from eeopt.torch.collect import collect_logits
from eeopt.torch.costs import ExitCosts, measure_exit_costs
from eeopt.torch.model import MultiExitModel
from eeopt.torch.runtime import EarlyExitResult, run_early_exit

__all__ = [
    "EarlyExitResult",
    "ExitCosts",
    "MultiExitModel",
    "collect_logits",
    "measure_exit_costs",
    "run_early_exit",
]
