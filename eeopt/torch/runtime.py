"""Real early exit: run a MultiExitModel stage by stage and drop samples as they exit.

Bookkeeping (:class:`_Pipeline`):

- Before each stage k wait the samples that reached it: their stage-(k-1) features (rows in
  the order of ``ids``), ``ids`` (positions in the loader's order) and ``prefix``, their
  probabilities at exits 0..k-1, ``(rows, k, n_classes)``.
- After stage k and head k, the logits go to the CPU; eeopt's softmax turns them into
  probabilities, appended to ``prefix``.
- The policy scores exit k from what is known so far: ``policy.prefix_scores(prefix)``.
  Every method's score at exit k depends on exits 0..k only, so this carries PABEE's counter,
  BEEM's running score and EENet's earlier scores without per-method code. Rescoring the
  prefix costs O(k) per stage on an array of (rows, k + 1, n_classes); :func:`prefix_scorer`
  skips only the re-validation of the runtime's own softmax output, so the scores are bit for
  bit those of ``prefix_scores``.
- ``engine.first_exit``, the one exit rule, decides on those scores with a "continue" column
  appended, so that only exit k can fire for these rows.
- The rows that fire get ``exit_index = k`` and the argmax of exit k; the rest go on to stage
  k + 1, their features cut with ``index_select``. At the last exit every row exits.
- By default a loader batch goes through all stages before the next batch starts. With
  ``refill=True`` the rows continuing past a stage gather across loader batches, and the next
  stage runs when a full batch has gathered (the rest at the end).
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
    concat_rows,
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
    refill: bool = False,
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
    refill : bool, default=False
        Throughput mode. False: each loader batch runs through the stages on its own, its
        samples leaving as they exit, so later stages see ever smaller batches (the lowest
        latency per batch). True: the samples that continue past a stage wait until a full
        batch (the size of the loader's first batch) has gathered from several loader
        batches before the next stage runs, so every stage runs on full batches, where a
        sample costs what ``measure_exit_costs`` measured; what is left runs at the end. The
        decisions are the same either way.

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
    pipeline = _Pipeline(model, policy, device, refill=bool(refill))
    total = len(loader) if hasattr(loader, "__len__") else None
    label_chunks: list[np.ndarray | None] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), Progress(total, "early exit", progress) as bar:
            start = time.perf_counter()
            for batch in loader:
                inputs, labels = split_batch(batch)
                pipeline.push(to_device(inputs, device))
                label_chunks.append(None if labels is None else labels_to_numpy(labels))
                bar.update()
            pipeline.flush()
            synchronize(device)
            seconds = time.perf_counter() - start
    finally:
        model.train(was_training)
    if not label_chunks:
        raise ValueError("loader yielded no batches; pass a loader with at least one sample.")
    have_labels = [labels is not None for labels in label_chunks]
    if any(have_labels) and not all(have_labels):
        raise ValueError("some batches have labels and some do not; give labels for all or none.")
    exit_index, predictions = pipeline.results()
    return EarlyExitResult(
        predictions=predictions,
        exit_index=exit_index,
        seconds=seconds,
        n_exits=model.n_exits,
        labels=np.concatenate(label_chunks) if all(have_labels) else None,
    )


class _Pipeline:
    """Samples waiting before each stage, run stage by stage (see the module docstring).

    ``pools[k]`` holds chunks ``(features, ids, prefix)`` of samples that reached stage k:
    the output of stage k - 1 (the inputs for k = 0), their positions in the loader's order
    and their probabilities at exits 0..k-1, ``(rows, k, n_classes)``. Without ``refill``
    a stage runs on whatever reached it from the current batch; with ``refill`` a stage
    k >= 1 waits until a full batch (the loader's first batch size) has gathered, and what
    is left runs at the end.
    """

    def __init__(
        self, model: MultiExitModel, policy: Policy, device: torch.device, refill: bool
    ) -> None:
        self.model, self.policy, self.device, self.refill = model, policy, device, refill
        self.n_exits = model.n_exits
        self.score_prefix = prefix_scorer(policy)
        self.rules = _early_exit_rules(policy.thresholds_)
        self.pools: list[list[tuple[Any, np.ndarray, np.ndarray | None]]] = [
            [] for _ in range(self.n_exits)
        ]
        self.waiting = [0] * self.n_exits
        self.batch_size = 0
        self.n_samples = 0
        self.done: list[tuple[np.ndarray, int, np.ndarray]] = []

    def push(self, inputs: Any) -> None:
        """One loader batch: stage 0 on all of it, then the later stages that are ready."""
        self.pools[0].append((inputs, None, None))
        self._run_stage(0, full=False)
        for k in range(1, self.n_exits):
            while self.waiting[k] and (not self.refill or self.waiting[k] >= self.batch_size):
                self._run_stage(k, full=self.refill)

    def flush(self) -> None:
        """Run what is still waiting, stage by stage (full batches, then the remainder)."""
        for k in range(1, self.n_exits):
            while self.waiting[k]:
                self._run_stage(k, full=self.refill)

    def results(self) -> tuple[np.ndarray, np.ndarray]:
        exit_index = np.empty(self.n_samples, dtype=np.int64)
        prediction = np.empty(self.n_samples, dtype=np.int64)
        for ids, k, predicted in self.done:
            exit_index[ids] = k
            prediction[ids] = predicted
        return exit_index, prediction

    def _take(self, k: int, full: bool) -> tuple[Any, np.ndarray, np.ndarray | None]:
        """The chunks waiting at stage k as one batch; with ``full``, its first batch_size
        rows, the rest left waiting."""
        chunks, self.pools[k] = self.pools[k], []
        features = concat_rows([c[0] for c in chunks])
        ids = np.concatenate([c[1] for c in chunks]) if k else None
        prefix = np.concatenate([c[2] for c in chunks]) if k else None
        self.waiting[k] = 0
        if full and k and ids.shape[0] > self.batch_size:
            rest = np.arange(self.batch_size, ids.shape[0])
            self.pools[k].append(
                (
                    _take_rows(features, torch.from_numpy(rest).to(self.device), k - 1),
                    ids[rest],
                    prefix[rest],
                )
            )
            self.waiting[k] = rest.shape[0]
            keep = torch.arange(self.batch_size, device=self.device)
            features, ids, prefix = (
                _take_rows(features, keep, k - 1),
                ids[: self.batch_size],
                prefix[: self.batch_size],
            )
        return features, ids, prefix

    def _run_stage(self, k: int, full: bool) -> None:
        model, policy = self.model, self.policy
        features, ids, prefix = self._take(k, full)
        features = model.run_stage(k, features)
        logits = logits_to_numpy(model.run_head(k, features))
        if k == 0:
            n_rows, n_classes = logits.shape
            if n_classes != policy.n_classes_:
                raise ValueError(
                    f"policy was fitted on {policy.n_classes_} classes but the model's exits "
                    f"give {n_classes}; pass a policy fitted on this model's outputs."
                )
            ids = np.arange(self.n_samples, self.n_samples + n_rows)
            self.n_samples += n_rows
            self.batch_size = self.batch_size or n_rows
            prefix = np.empty((n_rows, 0, n_classes), dtype=logits.dtype)
        elif logits.shape != (ids.shape[0], prefix.shape[2]):
            raise ValueError(
                f"head {k} gave logits of shape {logits.shape}; expected "
                f"({ids.shape[0]}, {prefix.shape[2]}) like head 0 on the remaining samples."
            )
        probs = _scores.softmax(logits.astype(prefix.dtype, copy=False))
        prefix = np.concatenate([prefix, probs[:, None]], axis=1)
        if k == self.n_exits - 1:  # the last exit always fires
            leaves = np.ones(ids.shape[0], dtype=bool)
        else:
            known = self.score_prefix(prefix)
            leaves = _leaves_at(known, self.rules[k], k, policy.method)
        if leaves.any():
            self.done.append((ids[leaves], k, _scores.exit_predictions(probs[leaves])))
        if leaves.all():
            return
        if leaves.any():
            stay = np.flatnonzero(~leaves)
            features = _take_rows(features, torch.from_numpy(stay).to(self.device), k)
            ids, prefix = ids[stay], prefix[stay]
        self.pools[k + 1].append((features, ids, prefix))
        self.waiting[k + 1] += ids.shape[0]


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
        data = ExitData(probs_prefix, costs=policy.costs_[:n_prefix], validate=False)
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
