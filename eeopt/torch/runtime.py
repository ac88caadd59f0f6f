"""Real early exit: run a MultiExitModel stage by stage and drop samples as they exit.

Bookkeeping (:class:`_Pipeline`): before each stage k wait the samples that reached it, as
chunks of their stage-(k-1) features (rows in the order of the chunk) and a *carry*: their
positions in the loader's order and what the exit rule needs to know of exits 0..k-1. After
stage k and head k the rule decides which rows leave at exit k; those get ``exit_index = k``
and exit k's argmax, the rest go on to stage k + 1, their features and carry cut with
``index_select``. At the last exit every row exits. By default a loader batch goes through all
stages before the next batch starts; with ``refill=True`` the rows continuing past a stage
gather across loader batches, and the next stage runs when a full batch has gathered (the
rest at the end).

Two deciders fill in the rule:

- :class:`_DeviceDecider` (the default where :func:`eeopt.torch.rules.rule_for` knows the
  policy): the policy's rule in torch on the model's device, the carry a few per-row tensors
  (BEEM's running score, the previous argmax, ...) on that device. Per stage it reads one
  number back to the host, how many rows leave; nothing else crosses until the end of the run,
  when the recorded exits and predictions come back in one copy.
- :class:`_HostDecider` (any policy; ``exit_rule="host"``): the logits go to the host, eeopt's
  softmax appends them to the carried probabilities of exits 0..k-1, ``prefix``, and
  ``policy.prefix_scores(prefix)`` scores exit k from all that is known so far (so a method
  needs no runtime code: PABEE's counter, BEEM's running score and EENet's earlier scores are
  recomputed from the prefix, O(k) per stage). ``engine.first_exit`` decides on those scores.
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
    DEPRECATED,
    concat_rows,
    labels_to_numpy,
    logits_to_numpy,
    resolve_device,
    resolve_verbose,
    slice_rows,
    split_batch,
    synchronize,
    take_rows,
    to_device,
)
from eeopt.torch.model import MultiExitModel, require_stagewise
from eeopt.torch.rules import ExitRule, rule_for

#: ``exit_rule=`` values of :func:`run_early_exit`.
EXIT_RULES = ("auto", "device", "host")


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
    exit_rule : {"device", "host"}
        Where the exit decisions were computed: on the model's device by the policy's torch
        rule (:mod:`eeopt.torch.rules`), or on the host by ``policy.prefix_scores``.
    """

    predictions: np.ndarray
    exit_index: np.ndarray
    seconds: float
    n_exits: int
    labels: np.ndarray | None = None
    exit_rule: str = "host"

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
    verbose: bool | None = None,
    refill: bool = False,
    *,
    exit_rule: str = "auto",
    progress: Any = DEPRECATED,
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
    verbose : bool, optional
        Draw a progress bar on stderr; default False.
    refill : bool, default=False
        Throughput mode. False: each loader batch runs through the stages on its own, its
        samples leaving as they exit, so later stages see ever smaller batches (the lowest
        latency per batch). True: the samples that continue past a stage wait until a full
        batch (the size of the loader's first batch) has gathered from several loader
        batches before the next stage runs, so every stage runs on full batches, where a
        sample costs what ``measure_exit_costs`` measured; what is left runs at the end. The
        decisions are the same either way.
    exit_rule : {"auto", "device", "host"}, default="auto"
        Where the exit decisions are computed. ``"device"``: the policy's rule in torch on the
        model's device (:mod:`eeopt.torch.rules`; one count read back per stage, no other
        host transfer until the run ends); for ``ScorePolicy`` (maxprob, entropy, margin,
        patience, msdnet), ``BeemPolicy`` and ``EENetPolicy``. ``"host"``: the logits go to
        the host and ``policy.prefix_scores`` scores them with numpy, for any policy class.
        ``"auto"``: the device where the policy has a rule, else the host (a user's own
        ``Policy`` subclass). ``result.exit_rule`` says which ran.
    progress : bool, optional
        Deprecated name of ``verbose`` (eeopt.torch called it so before 0.2); it still works,
        with a DeprecationWarning, and will be removed in the next release.

    Returns
    -------
    EarlyExitResult
        ``predictions`` and ``exit_index`` equal ``policy.predict`` and ``policy.exit_index``
        on the outputs :func:`collect_logits` extracts from the same model and data (up to the
        model's own floating-point dependence on batch composition and, with the device rule,
        near ties: a score within :func:`eeopt.torch.rules.score_tolerance` of its threshold,
        see ``docs/torch.md``), ``seconds``, ``exit_rule``, and ``labels``/``accuracy`` when
        the loader has labels.
    """
    verbose = resolve_verbose(verbose, progress, False, "run_early_exit")
    v.check_choice(exit_rule, "exit_rule", EXIT_RULES)
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
    rule = None if exit_rule == "host" else rule_for(policy, device)
    if rule is None and exit_rule == "device":
        raise ValueError(
            f"exit_rule='device' needs a policy eeopt has a torch rule for (ScorePolicy, "
            f"BeemPolicy, EENetPolicy, or a subclass that keeps their compute_scores); "
            f"{type(policy).__name__} has none: pass exit_rule='host' or 'auto'."
        )
    decider = _HostDecider(policy, device) if rule is None else _DeviceDecider(rule, device)
    pipeline = _Pipeline(model, decider, refill=bool(refill))
    total = len(loader) if hasattr(loader, "__len__") else None
    label_chunks: list[np.ndarray | None] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), Progress(total, "early exit", verbose) as bar:
            start = time.perf_counter()
            for batch in loader:
                inputs, labels = split_batch(batch)
                pipeline.push(to_device(inputs, device))
                label_chunks.append(None if labels is None else labels_to_numpy(labels))
                bar.update()
            pipeline.flush()
            if pipeline.n_samples == 0:  # no batches, or only empty ones (either exit rule)
                raise ValueError(
                    "loader yielded no batches or only empty ones; pass a loader with at least "
                    "one sample."
                )
            exit_index, predictions = decider.results(pipeline.n_samples)
            synchronize(device)
            seconds = time.perf_counter() - start
    finally:
        model.train(was_training)
    have_labels = [labels is not None for labels in label_chunks]
    if any(have_labels) and not all(have_labels):
        raise ValueError("some batches have labels and some do not; give labels for all or none.")
    return EarlyExitResult(
        predictions=predictions,
        exit_index=exit_index,
        seconds=seconds,
        n_exits=model.n_exits,
        labels=np.concatenate(label_chunks) if all(have_labels) else None,
        exit_rule=decider.name,
    )


class _Pipeline:
    """Samples waiting before each stage, run stage by stage (see the module docstring).

    Without ``refill`` a loader batch runs through the stages at once, the rows that stay
    carried from one stage to the next. With ``refill``, ``pools[k]`` holds chunks
    ``(features, carry)`` of samples that reached stage k: the output of stage k - 1 (the
    inputs for k = 0) and the decider's carry for the same rows (None for k = 0); a stage
    k >= 1 runs when a full batch (the loader's first batch size) has gathered, and what is
    left runs at the end.
    """

    def __init__(self, model: MultiExitModel, decider: _Decider, refill: bool) -> None:
        self.model, self.decider, self.refill = model, decider, refill
        self.n_exits = model.n_exits
        self.pools: list[list[tuple[Any, Any]]] = [[] for _ in range(self.n_exits)]
        self.waiting = [0] * self.n_exits
        self.batch_size = 0
        self.n_samples = 0

    def push(self, inputs: Any) -> None:
        """One loader batch: without refill, through the stages until no row is left; with
        refill, stage 0 on all of it, then the later stages that have a full batch waiting."""
        if not self.refill:  # no pools: nothing waits
            features, carry, n_stay, k = inputs, None, 1, 0
            while n_stay:  # the last exit leaves n_stay = 0
                n_stay, features, carry = self._stage(k, features, carry)
                k += 1
            return
        self.pools[0].append((inputs, None))
        self._run_stage(0, full=False)
        for k in range(1, self.n_exits):
            while self.waiting[k] and self.waiting[k] >= self.batch_size:
                self._run_stage(k, full=True)

    def flush(self) -> None:
        """With refill, run what is still waiting, stage by stage (full batches, then the
        remainder); nothing waits without refill."""
        for k in range(1, self.n_exits):
            while self.waiting[k]:
                self._run_stage(k, full=True)

    def _take(self, k: int, full: bool) -> tuple[Any, Any]:
        """The chunks waiting at stage k as one batch; with ``full``, its first batch_size
        rows, the rest left waiting."""
        chunks, self.pools[k] = self.pools[k], []
        n_rows, self.waiting[k] = self.waiting[k], 0
        features = concat_rows([chunk[0] for chunk in chunks])
        if not k:
            return features, None
        carry = self.decider.concat([chunk[1] for chunk in chunks])
        if full and n_rows > self.batch_size:
            size = self.batch_size
            self.pools[k].append(
                (
                    _slice_rows(features, size, n_rows, k - 1),
                    self.decider.slice(carry, size, n_rows),
                )
            )
            self.waiting[k] = n_rows - size
            features = _slice_rows(features, 0, size, k - 1)
            carry = self.decider.slice(carry, 0, size)
        return features, carry

    def _run_stage(self, k: int, full: bool) -> None:
        """Stage k on what waits before it; the rows that stay wait before stage k + 1."""
        n_stay, features, carry = self._stage(k, *self._take(k, full))
        if n_stay:
            self.pools[k + 1].append((features, carry))
            self.waiting[k + 1] += n_stay

    def _stage(self, k: int, features: Any, carry: Any) -> tuple[int, Any, Any]:
        """Stage and head k on ``features``, the exit decision: ``(n_stay, features, carry)``
        of the rows that go on."""
        model = self.model
        features = model.run_stage(k, features)
        logits = model.run_head(k, features)
        n_rows, n_classes = logits.shape
        if k == 0:
            if n_classes != self.decider.n_classes:
                raise ValueError(
                    f"policy was fitted on {self.decider.n_classes} classes but the model's "
                    f"exits give {n_classes}; pass a policy fitted on this model's outputs."
                )
            carry = self.decider.start(self.n_samples, n_rows)
            self.n_samples += n_rows
            self.batch_size = self.batch_size or n_rows
        elif (n_rows, n_classes) != (self.decider.rows(carry), self.decider.n_classes):
            raise ValueError(
                f"head {k} gave logits of shape {tuple(logits.shape)}; expected "
                f"({self.decider.rows(carry)}, {self.decider.n_classes}) like head 0 on the "
                f"remaining samples."
            )
        n_stay, keep, carry = self.decider.decide(k, k == self.n_exits - 1, logits, carry)
        if n_stay and keep is not None:
            features = _take_rows(features, keep, k)
        return n_stay, features, carry


class _Decider:
    """Which rows leave at each exit, and the carry the rule needs for the rest.

    ``decide(k, last, logits, carry)`` returns ``(n_stay, keep, carry)``: the number of rows
    going on, the index tensor of those rows on the device (None when every row stays), and
    their carry; it records the rows that leave. ``results(n)`` gives ``(exit_index,
    predictions)`` of all ``n`` samples in the loader's order.
    """

    name: str
    n_classes: int

    def start(self, offset: int, n_rows: int) -> Any: ...

    def rows(self, carry: Any) -> int: ...

    def concat(self, carries: list[Any]) -> Any: ...

    def slice(self, carry: Any, start: int, stop: int) -> Any: ...

    def decide(
        self, k: int, last: bool, logits: torch.Tensor, carry: Any
    ) -> tuple[int, torch.Tensor | None, Any]: ...

    def results(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]: ...


class _DeviceDecider(_Decider):
    """The policy's torch rule on the model's device; carry ``(ids, rule state)``, tensors.

    Each stage records its rows' ids, argmaxes and which of them fired, as they are; the
    fired entries are picked out once, at the end of the run, so that a stage spends no
    operation on the rows that leave.
    """

    name = "device"

    def __init__(self, rule: ExitRule, device: torch.device) -> None:
        self.rule, self.device = rule, device
        self.n_classes = rule.n_classes
        # (ids, exit, predictions, fires or None when every row leaves)
        self.done: list[tuple[torch.Tensor, int, torch.Tensor, torch.Tensor | None]] = []

    def start(self, offset: int, n_rows: int):
        return torch.arange(offset, offset + n_rows, device=self.device), {}

    def rows(self, carry) -> int:
        return carry[0].shape[0]

    def concat(self, carries):
        return concat_rows(carries)

    def slice(self, carry, start: int, stop: int):
        return slice_rows(carry, start, stop)

    def decide(self, k, last, logits, carry):
        ids, state = carry
        key, predictions, state = self.rule.step(k, logits, state)
        if last:  # the last exit always fires
            self.done.append((ids, k, predictions, None))
            return 0, None, None
        fires = self.rule.fires(k, key)
        # The rows that stay; their number is the one value read back per stage (nonzero
        # waits for it, as a count would, on an accelerator).
        keep = torch.nonzero(~fires).flatten()
        n_rows, n_stay = ids.shape[0], keep.shape[0]
        if n_stay == n_rows:
            return n_rows, None, (ids, state)
        if n_stay == 0:
            self.done.append((ids, k, predictions, None))
            return 0, None, None
        self.done.append((ids, k, predictions, fires))
        return n_stay, keep, take_rows((ids, state), keep)

    def results(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        # One copy of everything recorded, then the fired entries picked out on the host.
        ids = torch.cat([ids for ids, _, _, _ in self.done])
        predicted = torch.cat([p for _, _, p, _ in self.done])
        fired = torch.cat(
            [
                torch.ones_like(ids, dtype=torch.bool) if fires is None else fires
                for ids, _, _, fires in self.done
            ]
        )
        both = torch.stack([ids, predicted, fired.to(ids.dtype)]).cpu().numpy()
        exits = np.repeat([k for _, k, _, _ in self.done], [i.shape[0] for i, *_ in self.done])
        fired = both[2].astype(bool)
        exit_index = np.empty(n_samples, dtype=np.int64)
        predictions = np.empty(n_samples, dtype=np.int64)
        exit_index[both[0][fired]] = exits[fired]
        predictions[both[0][fired]] = both[1][fired]
        return exit_index, predictions


class _HostDecider(_Decider):
    """``policy.prefix_scores`` with numpy on the host; carry ``(ids, prefix)`` as arrays."""

    name = "host"

    def __init__(self, policy: Policy, device: torch.device) -> None:
        self.policy, self.device = policy, device
        self.n_classes = policy.n_classes_
        self.score_prefix = prefix_scorer(policy)
        self.rules = _early_exit_rules(policy.thresholds_)
        self.done: list[tuple[np.ndarray, int, np.ndarray]] = []

    def start(self, offset: int, n_rows: int) -> tuple[np.ndarray, None]:
        return np.arange(offset, offset + n_rows), None

    def rows(self, carry) -> int:
        return carry[0].shape[0]

    def concat(self, carries):
        return tuple(np.concatenate(parts) for parts in zip(*carries, strict=True))

    def slice(self, carry, start: int, stop: int):
        return tuple(part[start:stop] for part in carry)

    def decide(self, k, last, logits, carry):
        ids, prefix = carry
        logits = logits_to_numpy(logits)
        if prefix is None:
            prefix = np.empty((logits.shape[0], 0, logits.shape[1]), dtype=logits.dtype)
        probs = _scores.softmax(logits.astype(prefix.dtype, copy=False))
        prefix = np.concatenate([prefix, probs[:, None]], axis=1)
        if last:  # the last exit always fires
            leaves = np.ones(ids.shape[0], dtype=bool)
        else:
            known = self.score_prefix(prefix)
            leaves = _leaves_at(known, self.rules[k], k, self.policy.method)
        if leaves.any():
            self.done.append((ids[leaves], k, _scores.exit_predictions(probs[leaves])))
        if leaves.all():
            return 0, None, None
        if not leaves.any():
            return ids.shape[0], None, (ids, prefix)
        stay = np.flatnonzero(~leaves)
        keep = torch.from_numpy(stay).to(self.device)
        return stay.shape[0], keep, (ids[stay], prefix[stay])

    def results(self, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
        exit_index = np.empty(n_samples, dtype=np.int64)
        prediction = np.empty(n_samples, dtype=np.int64)
        for ids, k, predicted in self.done:
            exit_index[ids] = k
            prediction[ids] = predicted
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


def _slice_rows(features: Any, start: int, stop: int, k: int) -> Any:
    try:
        return slice_rows(features, start, stop)
    except (IndexError, RuntimeError) as exc:
        raise RuntimeError(
            f"could not split the output of stage {k} into full batches: stage outputs must "
            f"be batch-first tensors (or tuples/lists/dicts of them). {exc}"
        ) from exc
