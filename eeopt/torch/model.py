"""MultiExitModel: a backbone cut into stages, with one classifier head per stage.

Exit k's logits are ``heads[k](stages[k](... stages[0](x)))``. Running the stages one at a time
is what lets :func:`eeopt.torch.run_early_exit` stop samples early.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


class MultiExitModel(nn.Module):
    """A multi-exit network: ``stages[k]`` then ``heads[k]`` gives exit k's logits.

    Parameters
    ----------
    stages : sequence of nn.Module
        Backbone blocks, run in order; ``stages[k]`` maps the output of ``stages[k - 1]`` (the
        input for k = 0) to the features exit k reads. Batch-first: every tensor a stage returns
        (a tensor, or a tuple/list/dict of tensors, as in MSDNet's multi-scale features) has the
        samples on its first axis, so that exited samples can be dropped from the batch.
    heads : sequence of nn.Module
        Classifiers, ``heads[k]`` maps the features of stage k to logits ``(batch, n_classes)``.
        Same length as ``stages``.

    Examples
    --------
    >>> from torch import nn
    >>> stages = [nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Sequential(nn.Linear(16, 16))]
    >>> heads = [nn.Linear(16, 3), nn.Linear(16, 3)]
    >>> model = MultiExitModel(stages, heads)
    >>> [tuple(out.shape) for out in model(torch.zeros(5, 8))]
    [(5, 3), (5, 3)]
    """

    def __init__(self, stages: Iterable[nn.Module], heads: Iterable[nn.Module]) -> None:
        super().__init__()
        stages, heads = _module_list(stages, "stages"), _module_list(heads, "heads")
        if len(stages) != len(heads):
            raise ValueError(
                f"stages and heads must have the same length (one head per stage), got "
                f"{len(stages)} stages and {len(heads)} heads."
            )
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)

    @property
    def n_exits(self) -> int:
        return len(self.stages)

    def run_stage(self, k: int, features: Any) -> Any:
        """Stage k on the output of stage k - 1 (the input for k = 0)."""
        try:
            return self.stages[k](features)
        except Exception as exc:
            raise RuntimeError(
                f"stage {k} of {self.n_exits} ({type(self.stages[k]).__name__}) failed: {exc}"
            ) from exc

    def run_head(self, k: int, features: Any) -> torch.Tensor:
        """Head k on the features of stage k: logits ``(batch, n_classes)``."""
        try:
            logits = self.heads[k](features)
        except Exception as exc:
            raise RuntimeError(
                f"head {k} of {self.n_exits} ({type(self.heads[k]).__name__}) failed: {exc}"
            ) from exc
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise ValueError(
                f"head {k} must return logits of shape (batch, n_classes), got {shape}."
            )
        return logits

    def forward(self, x: Any) -> list[torch.Tensor]:
        """Every exit's logits: a list of ``n_exits`` tensors ``(batch, n_classes)``."""
        outputs = []
        features = x
        for k in range(self.n_exits):
            features = self.run_stage(k, features)
            outputs.append(self.run_head(k, features))
        return outputs


def _module_list(modules: Any, name: str) -> list[nn.Module]:
    kind = type(modules).__name__
    if isinstance(modules, nn.Module) and not isinstance(modules, (nn.ModuleList, nn.Sequential)):
        raise TypeError(f"{name} must be a list of nn.Module, got a single {kind}.")
    try:
        modules = list(modules)
    except TypeError:
        raise TypeError(f"{name} must be a list of nn.Module, got {kind}.") from None
    if not modules:
        raise ValueError(f"{name} must hold at least one module (one per exit).")
    for i, module in enumerate(modules):
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name}[{i}] must be an nn.Module, got {type(module).__name__}.")
    return modules


def require_stagewise(model: Any, purpose: str) -> MultiExitModel:
    """``model`` if it can run stage by stage, else an error that says why it must."""
    if isinstance(model, MultiExitModel):
        return model
    raise TypeError(
        f"{purpose} needs a MultiExitModel (stages and heads run one at a time), got "
        f"{type(model).__name__}. A model whose forward returns every exit's logits at once "
        f"cannot stop a sample early; wrap its blocks and classifiers as "
        f"MultiExitModel(stages, heads). collect_logits accepts either kind."
    )
