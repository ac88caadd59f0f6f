"""Real early exit: run a MultiExitModel stage by stage and drop samples as they exit.

Bookkeeping per batch of n samples:

- ``active`` holds the batch positions of the samples still running; the features of stage k
  hold exactly those rows, in that order.
- After stage k and head k, the logits of the active rows go to the CPU; eeopt's softmax turns
  them into probabilities, stored in a per-batch buffer ``probs[n, n_exits, n_classes]``.
- The policy scores exit k from what is known so far:
  ``policy.prefix_scores(probs[active, :k + 1])``. Every method's score at exit k depends on
  exits 0..k only, so this carries PABEE's counter, BEEM's running score and EENet's earlier
  scores without per-method code. Rescoring the prefix costs O(k) per stage on an array of
  (active, k + 1, n_classes); :func:`prefix_scorer` skips only the re-validation of the
  runtime's own softmax output, so the scores are bit for bit those of ``prefix_scores``.
- ``engine.first_exit``, the one exit rule, decides on those scores with a "continue" column
  appended, so that only exit k can fire for the active rows.
- The rows that fire get ``exit_index = k`` and the argmax of exit k; the rest stay, and the
  features are cut to them with ``index_select``. At the last exit every remaining row exits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eeopt import _validation as v
from eeopt import engine
from eeopt import scores as _scores
from eeopt._progress import Progress
from eeopt.data import ExitData
from eeopt.policy import Policy, load_policy
from eeopt.torch._batch import (
    labels_to_numpy,
    logits_to_numpy,
    resolve_device,
    split_batch,
    synchronize,
    take_rows,
    to_device,
)
from eeopt.torch.model import MultiExitModel, require_stagewise


@dataclass
class EarlyExitResult:
    """What an early-exit run gave.

    Attributes
    ----------
    predictions : ndarray of shape (n_samples,)
        The class predicted at each sample's exit.
    exit_index : ndarray of shape (n_samples,)
        The exit each sample left at, 0-based; same meaning as ``policy.exit_index``.
    seconds : float
        Wall-clock time of the run, from the first batch requested to the last result on the
        CPU (device work synchronised), loader time included.
    n_exits : int
    labels : ndarray of shape (n_samples,) or None
        When the loader gave labels.
    """

    predictions: np.ndarray
    exit_index: np.ndarray
    seconds: float
    n_exits: int
    labels: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return self.exit_index.shape[0]

    @property
    def accuracy(self) -> float | None:
        """``mean(predictions == labels)``; None without labels."""
        if self.labels is None:
            return None
        return float(np.mean(self.predictions == self.labels))

    @property
    def exit_fractions(self) -> np.ndarray:
        """Share of samples leaving at each exit, ``(n_exits,)``."""
        return np.bincount(self.exit_index, minlength=self.n_exits) / self.n_samples

    def mean_cost(self, costs: Any) -> float:
        """``mean(costs[exit_index])`` for cumulative per-exit ``costs``."""
        return engine.mean_cost(self.exit_index, v.check_costs(costs, self.n_exits))

    def __repr__(self) -> str:
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        fractions = ", ".join(f"{f:.3f}" for f in self.exit_fractions)
        return (
            f"EarlyExitResult(n_samples={self.n_samples}, accuracy={acc}, "
            f"seconds={self.seconds:.4g}, exit_fractions=[{fractions}])"
        )


def run_early_exit(
    model: MultiExitModel,
    policy: Policy | str | os.PathLike,
    loader: Iterable,
    device: Any = None,
    progress: bool = False,
) -> EarlyExitResult:
    """Classify every sample of ``loader``, stopping each at the exit the policy chooses.

    Parameters
    ----------
    model : MultiExitModel
        Run one stage at a time; a model that returns all exits at once cannot exit early.
    policy : Policy or path
        A fitted eeopt policy of any method, or the path of its JSON file
        (:meth:`eeopt.Policy.save`). Its thresholds and scorer parameters are used as fitted.
    loader : iterable
        A DataLoader or any iterable of batches ``(inputs, labels)`` or inputs alone; any
        batch size, the last batch may be smaller.
    device : str or torch.device, optional
        Where to run; the model is moved there. Default: where the model's weights are.
    progress : bool, default=False
        Draw a progress bar on stderr.

    Returns
    -------
    EarlyExitResult
        ``predictions`` and ``exit_index`` equal ``policy.predict`` and ``policy.exit_index``
        on the outputs :func:`collect_logits` extracts from the same model and data (up to
        the model's own floating-point dependence on batch composition), ``seconds``, and
        ``labels``/``accuracy`` when the loader has labels.
    """
    model = require_stagewise(model, "run_early_exit")
    if isinstance(policy, (str, os.PathLike)):
        policy = load_policy(policy)
    if not isinstance(policy, Policy):
        raise TypeError(
            f"policy must be a fitted eeopt Policy or the path of its JSON file, got "
            f"{type(policy).__name__}."
        )
    if policy.n_exits_ != model.n_exits:
        raise ValueError(
            f"policy was fitted on {policy.n_exits_} exits but model has {model.n_exits}; "
            f"pass a policy fitted on this model's outputs."
        )
    device = resolve_device(model, device)
    score_prefix = prefix_scorer(policy)
    rules = _early_exit_rules(policy.thresholds_)
    total = len(loader) if hasattr(loader, "__len__") else None
    predictions: list[np.ndarray] = []
    exits: list[np.ndarray] = []
    label_chunks: list[np.ndarray | None] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), Progress(total, "early exit", progress) as bar:
            start = time.perf_counter()
            for batch in loader:
                inputs, labels = split_batch(batch)
                batch_exits, batch_predictions = _run_batch(
                    model, policy, score_prefix, rules, to_device(inputs, device), device
                )
                exits.append(batch_exits)
                predictions.append(batch_predictions)
                label_chunks.append(None if labels is None else labels_to_numpy(labels))
                bar.update()
            synchronize(device)
            seconds = time.perf_counter() - start
    finally:
        model.train(was_training)
    if not exits:
        raise ValueError("loader yielded no batches; pass a loader with at least one sample.")
    have_labels = [labels is not None for labels in label_chunks]
    if any(have_labels) and not all(have_labels):
        raise ValueError("some batches have labels and some do not; give labels for all or none.")
    return EarlyExitResult(
        predictions=np.concatenate(predictions),
        exit_index=np.concatenate(exits),
        seconds=seconds,
        n_exits=model.n_exits,
        labels=np.concatenate(label_chunks) if all(have_labels) else None,
    )


def _run_batch(
    model: MultiExitModel,
    policy: Policy,
    score_prefix,
    rules: list[np.ndarray],
    inputs: Any,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Exit index and prediction of every sample of one batch (see the module docstring)."""
    n_exits = model.n_exits
    features = inputs
    probs = active = exit_index = prediction = None
    for k in range(n_exits):
        features = model.run_stage(k, features)
        logits = logits_to_numpy(model.run_head(k, features))
        if k == 0:
            n_samples, n_classes = logits.shape
            if n_classes != policy.n_classes_:
                raise ValueError(
                    f"policy was fitted on {policy.n_classes_} classes but the model's exits "
                    f"give {n_classes}; pass a policy fitted on this model's outputs."
                )
            probs = np.empty((n_samples, n_exits, n_classes), dtype=logits.dtype)
            active = np.arange(n_samples)
            exit_index = np.empty(n_samples, dtype=np.int64)
            prediction = np.empty(n_samples, dtype=np.int64)
        elif logits.shape != (active.shape[0], probs.shape[2]):
            raise ValueError(
                f"head {k} gave logits of shape {logits.shape}; expected "
                f"({active.shape[0]}, {probs.shape[2]}) like head 0 on the remaining samples."
            )
        probs[active, k] = _scores.softmax(logits)
        known = score_prefix(probs[active, : k + 1])
        if k == n_exits - 1:  # the last exit always fires
            leaves = np.ones(active.shape[0], dtype=bool)
        else:
            leaves = _leaves_at(known, rules[k], k, policy.method)
            if not leaves.any():
                continue
        leaving = active[leaves]
        exit_index[leaving] = k
        prediction[leaving] = _scores.exit_predictions(probs[leaving, k])
        active = active[~leaves]
        if active.shape[0] == 0:
            break
        rows = torch.from_numpy(np.flatnonzero(~leaves)).to(device)
        features = _take_rows(features, rows, k)
    return exit_index, prediction


def prefix_scorer(policy: Policy):
    """``policy.prefix_scores``, without re-validating probabilities the runtime computed.

    ``Policy.prefix_scores`` wraps the prefix in a validated ExitData (finite, rows summing to
    one, costs non-decreasing): about as long as the scoring itself on a batch of 64. The
    runtime's probabilities come from eeopt's softmax, so it builds the same ExitData without
    those checks and calls the same ``compute_scores``. A policy class that overrides
    ``prefix_scores`` (say, with its own incremental state) is called as it is.
    """
    if type(policy).prefix_scores is not Policy.prefix_scores:
        return policy.prefix_scores
    n_exits, n_classes = policy.n_exits_, policy.n_classes_

    def score_prefix(probs_prefix: np.ndarray) -> np.ndarray:
        n_prefix = probs_prefix.shape[1]
        if not 1 <= n_prefix <= n_exits or probs_prefix.shape[2] != n_classes:
            return policy.prefix_scores(probs_prefix)  # its error message
        probs_prefix.flags.writeable = False
        data = ExitData.__new__(ExitData)
        data.__dict__.update(
            probs=probs_prefix, labels=None, costs=policy.costs_[:n_prefix], metadata={}
        )
        return policy.compute_scores(data)

    return score_prefix


def _early_exit_rules(thresholds: np.ndarray) -> list[np.ndarray]:
    """For each early exit k, the thresholds of exits 0..k followed by a "continue" exit.

    ``engine.first_exit`` on the scores known at exit k plus that column sends the rows where
    no exit up to k fires to the "continue" exit (the last exit always fires): they stay.
    """
    return [np.append(thresholds[: k + 1], -np.inf) for k in range(thresholds.shape[0] - 1)]


def _leaves_at(known: np.ndarray, rule: np.ndarray, k: int, method: str) -> np.ndarray:
    """Which active rows exit at early exit k, by ``engine.first_exit`` on the known scores."""
    scores = np.concatenate([known, np.zeros((known.shape[0], 1), known.dtype)], axis=1)
    first = engine.first_exit(scores, rule)
    if np.any(first < k):
        raise RuntimeError(
            f"policy {method!r} fires at an exit before {k} for a sample that did not exit "
            f"there: its prefix_scores are not causal (the score at an exit changed once a "
            f"later exit was seen). This is a bug in the method's compute_scores."
        )
    return first == k


def _take_rows(features: Any, rows: torch.Tensor, k: int) -> Any:
    try:
        return take_rows(features, rows)
    except (IndexError, RuntimeError) as exc:
        raise RuntimeError(
            f"could not drop exited samples from the output of stage {k}: stage outputs must "
            f"be batch-first tensors (or tuples/lists/dicts of them). {exc}"
        ) from exc
