"""Exit rules on the model's device: every eeopt policy's decision, exit by exit, in torch.

:func:`eeopt.torch.run_early_exit` decides with these rules by default, so the head's outputs
never leave the device: at exit k a rule turns the active rows' logits and a small per-row
state into a *key* and the argmax, and a row leaves when :meth:`ExitRule.fires` (``key >=
cuts[k]``, or ``<=`` for maxprob). The state is what the numpy policy would recompute from the
earlier exits' probabilities:

- ``ScorePolicy`` maxprob: no state; the key is the softmax denominator
  ``sum_c exp(x_c - max x)``, the max probability being its reciprocal (a row leaves when the
  key is *at most* the cut).
- ``ScorePolicy`` entropy, margin: no state; the key is the score.
- ``ScorePolicy`` vote: the votes per class ``(rows, n_classes)``; the key is the mode's count.
- ``ScorePolicy`` patience: the previous argmax and the agreement counter, the key.
- ``BeemPolicy``: the previous argmax and the running score ``S`` (float64), the key.
- ``EENetPolicy``: the votes per class and the scores ``s_0 .. s_{k-1}``; the key is ``s_k``
  (float64).

Each quantity is computed in the dtype the numpy path computes it in (:mod:`eeopt.scores`,
:mod:`eeopt.methods.beem`, :mod:`eeopt.methods.eenet`): probabilities in the logits' dtype
(half precisions widened to float32, as :func:`eeopt.torch.collect_logits` does), BEEM's and
EENet's scores in float64 (only the entropy confidence's last two operations stay in the
probabilities' dtype where numpy goes through float64: one unit in the last place). The cuts
make the comparison exact: for a float32 key, ``cuts[k]`` is the smallest float32 not below
``thresholds_[k]`` (so ``key >= cuts[k]`` exactly when ``float64(key) >= thresholds_[k]``,
the numpy comparison); for maxprob's denominator, the largest one whose reciprocal reaches the
threshold (:func:`total_cut`); for a count, the smallest count whose numpy score
(``count / (k + 1)`` for vote, the count for patience) reaches the threshold.

**Agreement with the numpy policy.** Given the same logits, the rule and
``policy.exit_index`` / ``policy.predict`` agree on every sample except near ties: torch's and
numpy's float32 ``exp``, ``log`` and sums differ in the last bits (numpy's float32 ``exp`` is
not correctly rounded either), so a probability may differ by a few units in the last place
(at most 14 x 2^-24 measured over 2.4 x 10^5 rows of 2 to 1000 classes). :func:`score_tolerance`
bounds what that does to each exit's score; a sample can exit elsewhere only if, at an exit it
reaches, its score is within that tolerance of the threshold or its two largest probabilities
are within ``2 * PROB_TOLERANCE`` of each other (the argmax that vote, patience, BEEM and the
prediction use can then flip). Computing the rule in float64 does not remove this: the
numpy path's own float32 rounding is the difference.

A policy class this module does not know (a user's own subclass that overrides
``compute_scores`` or ``prefix_scores``) has no device rule: :func:`rule_for` returns None
and the runtime decides on the host with ``policy.prefix_scores``, as before.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from eeopt.methods.beem import RESET_MODES, BeemPolicy
from eeopt.methods.eenet import N_CONFIDENCE_FEATURES, EENetPolicy
from eeopt.policy import Policy, ScorePolicy
from eeopt.scores import SCORE_NAMES

#: Bound on ``|p_torch - p_numpy|`` for probabilities from the same logits: float32 2^-18,
#: 4.6 times the largest difference measured (14 x 2^-24, 2.4e5 rows of 2 to 1000 classes);
#: float64 2^-47, the same margin over float64's 2^-53.
PROB_TOLERANCE = {torch.float32: 2.0**-18, torch.float64: 2.0**-47}

State = dict[str, torch.Tensor]


def probability_dtype(logits_dtype: torch.dtype) -> torch.dtype:
    """The dtype the numpy path computes probabilities in: float64 kept, the rest float32."""
    return torch.float64 if logits_dtype == torch.float64 else torch.float32


def wide_dtype(device: torch.device) -> torch.dtype:
    """float64, where the device has it (Apple's MPS has not: float32 there)."""
    return torch.float32 if device.type == "mps" else torch.float64


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """eeopt's stable softmax in torch: ``exp(x - max) / sum``, as :func:`eeopt.scores.softmax`.

    Written out rather than ``torch.softmax``: the same operations as numpy (a true division
    by the sum), and on the CPU faster for few classes (``torch.softmax`` on ``(64, 10)``
    takes 10 us, this 6 us).
    """
    dtype = probability_dtype(logits.dtype)
    if logits.dtype != dtype:
        logits = logits.to(dtype)
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    shifted.exp_()
    return shifted.div_(shifted.sum(dim=-1, keepdim=True))


def exp_total(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sum_c exp(x_c - max x)`` and the argmax of each row, in the probabilities' dtype.

    The max probability is ``1 / total`` (the top class's ``exp(0)`` is exactly 1), which is
    how numpy's softmax computes it; the argmax of the logits is the argmax of the
    probabilities (first index on ties) except where two probabilities round to the same
    value. Four operations, where the full softmax and its max take six.
    """
    dtype = probability_dtype(logits.dtype)
    if logits.dtype != dtype:
        logits = logits.to(dtype)
    top, predictions = logits.max(dim=-1, keepdim=True)
    return (logits - top).exp_().sum(dim=-1), predictions[:, 0]


def total_cut(threshold: float, dtype: torch.dtype) -> float:
    """The largest ``total`` of ``dtype`` whose max probability ``1 / total`` (rounded to
    ``dtype``, as numpy's division does) is ``>= threshold``; -inf if none.

    ``1 / total`` does not increase with ``total``, so ``total <= total_cut(t)`` exactly when
    the max probability reaches ``t``: the maxprob rule needs no division.
    """
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    one = np_dtype(1.0)
    target = round_up(threshold, dtype)
    if target <= 0.0:
        return math.inf
    if one / one < target:  # totals are >= 1, so the max probability is <= 1
        return -math.inf
    # Bisect over the bit patterns of positive floats (ordered as integers): the last
    # total >= 1 whose reciprocal still reaches the target.
    int_dtype = np.int64 if np_dtype == np.float64 else np.int32
    low = int(np.array(one, dtype=np_dtype).view(int_dtype))  # reaches
    high = int(np.array(np.inf, dtype=np_dtype).view(int_dtype))  # does not (1/inf = 0)
    while high - low > 1:
        middle = (low + high) // 2
        total = np.array(middle, dtype=int_dtype).view(np_dtype)[()]
        if one / total >= target:
            low = middle
        else:
            high = middle
    return float(np.array(low, dtype=int_dtype).view(np_dtype)[()])


def round_up(threshold: float, dtype: torch.dtype) -> float:
    """The smallest float32 (or float64) that is ``>= threshold``, infinities kept.

    For a key ``x`` of that dtype, ``x >= round_up(t)`` exactly when ``x >= t`` in float64.
    Computed on the host with numpy, once per run.
    """
    if dtype == torch.float64 or math.isinf(threshold):
        return float(threshold)
    if dtype != torch.float32:
        raise ValueError(f"keys are float32 or float64, got {dtype}.")
    largest = float(np.finfo(np.float32).max)
    if threshold > largest:
        return math.inf
    if threshold < -largest:
        return -largest
    narrow = np.float32(threshold)
    if float(narrow) < threshold:
        narrow = np.nextafter(narrow, np.float32(np.inf))
    return float(narrow)


def count_cut(threshold: float, values: list[float], never: int) -> int:
    """The smallest count ``c`` whose score ``values[c]`` is ``>= threshold``; ``never`` if none.

    ``values`` are the numpy path's float64 scores of the counts 0, 1, 2, ... in order.
    """
    for count, value in enumerate(values):
        if value >= threshold:
            return count
    return never


class ExitRule:
    """A fitted policy's exit rule, exit by exit, on torch tensors of any device.

    Subclasses implement :meth:`step`; :meth:`fires` says which rows leave at exit k (by
    default ``key >= cuts[k]``, the thresholds made exact for the key's dtype once per rule).
    The caller lets every row leave at the last exit, whatever the rule says.

    Attributes
    ----------
    method : str
    n_exits : int
    n_classes : int
    """

    def __init__(self, policy: Policy, device: torch.device) -> None:
        self.method = policy.method
        self.n_exits = policy.n_exits_
        self.n_classes = policy.n_classes_
        self.device = device
        self.wide = wide_dtype(device)
        self.thresholds = np.asarray(policy.thresholds_, dtype=np.float64)
        self._cuts: dict[torch.dtype, list[float]] = {}

    def step(
        self, k: int, logits: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """The key and argmax of exit k for the rows of ``logits``, and their new state.

        Parameters
        ----------
        k : int
            The exit, 0-based; exits ``0..k-1`` were stepped for these rows, in order.
        logits : Tensor of shape (rows, n_classes)
        state : dict of Tensor
            What the step at exit k - 1 returned for these rows (rows in the same order), or
            ``{}`` at exit 0. Every tensor in it is batch-first.

        Returns
        -------
        key : Tensor of shape (rows,)
            The row leaves at exit k when ``fires(k, key)``.
        predictions : Tensor of shape (rows,), int64
            The argmax of exit k's probabilities (first index on ties, as numpy).
        state : dict of Tensor
        """
        raise NotImplementedError

    def fires(self, k: int, key: torch.Tensor) -> torch.Tensor:
        """Which rows the rule sends out at exit k (not special-casing the last exit)."""
        cuts = self._cuts.get(key.dtype)
        if cuts is None:
            cuts = self._cuts[key.dtype] = self.cuts(key.dtype)
        return key >= cuts[k]

    def cuts(self, key_dtype: torch.dtype) -> list[float]:
        """Per-exit cuts for keys of ``key_dtype``: ``key >= cut`` is the numpy comparison."""
        return [round_up(float(t), key_dtype) for t in self.thresholds]

    def scores(self, k: int, key: torch.Tensor) -> torch.Tensor:
        """The numpy policy's score of exit k from the key, float64 (for diagnostics)."""
        return key.to(torch.float64)


class ScoreRule(ExitRule):
    """``ScorePolicy``: maxprob, entropy, margin, vote and patience (:mod:`eeopt.scores`)."""

    def __init__(self, policy: ScorePolicy, device: torch.device) -> None:
        super().__init__(policy, device)
        self.score_name = policy.score_name
        self.log_classes = float(np.log(self.n_classes))  # the numpy scalar entropy divides by
        if self.score_name in ("vote", "patience"):
            n = self.n_exits
            never = n + 2  # larger than any count
            if self.score_name == "vote":
                # numpy: best / (k + 1), an int64 array over a Python int: float64 division.
                table = [[c / (k + 1) for c in range(k + 2)] for k in range(n)]
            else:
                table = [[float(c) for c in range(k + 1)] for k in range(n)]
            self.count_cuts = [
                count_cut(float(t), values, never)
                for t, values in zip(self.thresholds, table, strict=True)
            ]

    def fires(self, k: int, key: torch.Tensor) -> torch.Tensor:
        if self.score_name != "maxprob":
            return super().fires(k, key)
        cuts = self._cuts.get(key.dtype)
        if cuts is None:
            cuts = self._cuts[key.dtype] = [total_cut(float(t), key.dtype) for t in self.thresholds]
        return key <= cuts[k]

    def cuts(self, key_dtype: torch.dtype) -> list[float]:
        if self.score_name in ("vote", "patience"):
            return self.count_cuts
        return super().cuts(key_dtype)

    def scores(self, k: int, key: torch.Tensor) -> torch.Tensor:
        if self.score_name == "vote":
            return key.to(torch.float64) / (k + 1)
        if self.score_name == "maxprob":  # the key is the softmax denominator
            return key.reciprocal().to(torch.float64)
        return super().scores(k, key)

    def step(self, k, logits, state):
        name = self.score_name
        if name == "maxprob":
            total, predictions = exp_total(logits)
            return total, predictions, state
        probs = softmax(logits)
        confidence, predictions = probs.max(dim=-1)
        if name == "entropy":
            return entropy_confidence(probs, self.log_classes), predictions, state
        if name == "margin":
            top2 = probs.topk(2, dim=-1).values
            return top2[:, 0] - top2[:, 1], predictions, state
        if name == "vote":
            votes = add_votes(state.get("votes"), predictions, self.n_classes)
            return votes.amax(dim=1), predictions, {"votes": votes}
        # patience: consecutive exits agreeing with this one, minus one.
        if k == 0:
            count = torch.zeros_like(predictions, dtype=torch.int32)
        else:
            count = torch.where(predictions == state["previous"], state["count"] + 1, 0)
        return count, predictions, {"previous": predictions, "count": count}


class BeemRule(ExitRule):
    """``BeemPolicy``: the running expert score ``S_k`` (:func:`eeopt.methods.beem.beem_scores`)."""

    def __init__(self, policy: BeemPolicy, device: torch.device) -> None:
        super().__init__(policy, device)
        if policy.reset not in RESET_MODES:
            raise ValueError(f"policy.reset must be one of {RESET_MODES}, got {policy.reset!r}.")
        self.weights = [float(w) for w in policy.weights_]
        self.reset = policy.reset

    def step(self, k, logits, state):
        total, predictions = exp_total(logits)
        # numpy: conf.astype(float64) * w_k, added to S_{k-1} in float64; conf = 1 / total in
        # the probabilities' dtype.
        vote = total.reciprocal_().to(self.wide) * self.weights[k]
        if k == 0:
            score = vote if self.reset == "paper" else torch.zeros_like(vote)
        else:
            restart = vote if self.reset == "paper" else 0.0
            score = torch.where(predictions == state["previous"], state["score"] + vote, restart)
        return score, predictions, {"previous": predictions, "score": score}


class EENetRule(ExitRule):
    """``EENetPolicy``: ``s_k = sigmoid(w_k . [p_k, max p_k, entropy_k, vote_k, s_0..s_{k-1}]
    + b_k)`` (:func:`eeopt.methods.eenet.utility_scores`)."""

    def __init__(self, policy: EENetPolicy, device: torch.device) -> None:
        super().__init__(policy, device)
        n_base = self.n_classes + N_CONFIDENCE_FEATURES
        self.log_classes = float(np.log(self.n_classes))
        self.coefs, self.intercepts = [], []
        for k, coef in enumerate(policy.coefs_):
            coef = torch.as_tensor(np.asarray(coef), dtype=self.wide, device=device)
            if coef.shape != (n_base + k,):
                raise ValueError(
                    f"policy.coefs_[{k}] must have shape ({n_base + k},), got {tuple(coef.shape)}."
                )
            self.coefs.append(coef)
            self.intercepts.append(
                torch.tensor(float(policy.intercepts_[k]), dtype=self.wide, device=device)
            )

    def step(self, k, logits, state):
        probs = softmax(logits)
        confidence, predictions = probs.max(dim=-1)
        votes = add_votes(state.get("votes"), predictions, self.n_classes)
        vote = votes.amax(dim=1, keepdim=True).to(self.wide).div_(k + 1)
        entropy = entropy_confidence(probs, self.log_classes)
        narrow = torch.cat([probs, confidence[:, None], entropy[:, None]], dim=1)
        # z_k = [p_k, max p_k, entropy_k, vote_k, s_0 .. s_{k-1}] in float64, as numpy's
        # features; one product with w_k (numpy adds the earlier scores' part separately: the
        # two sums differ by float64 rounding).
        parts = [narrow.to(self.wide), vote] + ([state["earlier"]] if k else [])
        utility = torch.addmv(self.intercepts[k], torch.cat(parts, dim=1), self.coefs[k])
        utility = utility.sigmoid_()
        earlier = utility[:, None] if k == 0 else torch.cat([state["earlier"], utility[:, None]], 1)
        return utility, predictions, {"votes": votes, "earlier": earlier}


def entropy_confidence(probs: torch.Tensor, log_classes: float) -> torch.Tensor:
    """``1 + sum_c p log p / log C`` clipped to [0, 1], as :func:`eeopt.scores.entropy_confidence`.

    numpy sums ``p log p`` in the probabilities' dtype, then divides by ``np.log(C)`` and adds
    1 in float64 before rounding back; here the whole is in the probabilities' dtype, which
    adds at most one unit in the last place to what the sums already differ by, and saves two
    conversions.
    """
    neg_entropy = torch.special.xlogy(probs, probs).sum(dim=-1)
    return neg_entropy.div_(log_classes).add_(1.0).clamp_(0.0, 1.0)


def add_votes(votes: torch.Tensor | None, predictions: torch.Tensor, n_classes: int):
    """Votes per class ``(rows, n_classes)`` int32, with one more for each row's prediction."""
    if votes is None:
        votes = torch.zeros(
            (predictions.shape[0], n_classes), dtype=torch.int32, device=predictions.device
        )
    return votes.scatter_add_(
        1, predictions[:, None], torch.ones_like(predictions, dtype=torch.int32)[:, None]
    )


_RULES = ((ScorePolicy, ScoreRule), (BeemPolicy, BeemRule), (EENetPolicy, EENetRule))


def rule_for(policy: Policy, device: Any = "cpu") -> ExitRule | None:
    """The device rule of ``policy``, or None when eeopt has none for its class.

    A rule exists for ``ScorePolicy`` (maxprob, entropy, margin, vote, patience; the methods
    maxprob, entropy, margin, patience and msdnet), ``BeemPolicy`` and ``EENetPolicy``, and
    for subclasses of these that override neither ``compute_scores`` nor ``prefix_scores``.
    """
    device = torch.device(device)
    cls = type(policy)
    if cls.prefix_scores is not Policy.prefix_scores:
        return None
    for known, rule_class in _RULES:
        if isinstance(policy, known) and cls.compute_scores is known.compute_scores:
            if known is ScorePolicy and policy.score_name not in SCORE_NAMES:
                return None
            return rule_class(policy, device)
    return None


def rule_scores(rule: ExitRule, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every exit's score and argmax from the rule, no sample leaving: for diagnostics and tests.

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_exits, n_classes)

    Returns
    -------
    scores : Tensor of shape (n_samples, n_exits), float64
        What ``policy.compute_scores`` gives on the same logits, up to the rounding discussed in
        the module docstring.
    predictions : Tensor of shape (n_samples, n_exits), int64
    """
    if logits.ndim != 3 or logits.shape[1:] != (rule.n_exits, rule.n_classes):
        raise ValueError(
            f"logits must have shape (n_samples, {rule.n_exits}, {rule.n_classes}), got "
            f"{tuple(logits.shape)}."
        )
    logits = logits.detach()
    state: State = {}
    scores, predictions = [], []
    for k in range(rule.n_exits):
        key, predicted, state = rule.step(k, logits[:, k], state)
        scores.append(rule.scores(k, key))
        predictions.append(predicted)
    return torch.stack(scores, dim=1), torch.stack(predictions, dim=1)


def score_tolerance(policy: Policy, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """How far the device rule's score may be from the numpy policy's, per exit.

    Assumes the two paths' probabilities differ by at most ``PROB_TOLERANCE[dtype]`` and have
    the same argmax at every exit (see the module docstring). Scores computed from the same
    quantities in float64 (BEEM's sum, EENet's linear score) add a relative 1e-12.

    Returns
    -------
    ndarray of shape (n_exits,)
        Maxprob, entropy and margin: 2x the probability bound (margin subtracts two of them;
        the entropy confidence is a weighted mean of ``log p``, measured within it). Vote and
        patience: 0 (counts). BEEM: the bound times ``sum_{j <= k} w_j``. EENet: the bound
        carried through each exit's linear score (``|w|`` times the features' bounds) and the
        sigmoid (slope <= 1/4).
    """
    delta = PROB_TOLERANCE[probability_dtype(dtype)]
    n_exits = policy.n_exits_
    rule = rule_for(policy)
    if rule is None:
        raise ValueError(f"{type(policy).__name__} has no device rule; no tolerance to state.")
    if isinstance(rule, ScoreRule):
        exact = rule.score_name in ("vote", "patience")
        return np.full(n_exits, 0.0 if exact else 2 * delta)
    if isinstance(rule, BeemRule):
        sums = np.cumsum(np.abs(rule.weights))
        return sums * delta * (1 + 1e-9) + 1e-12 * sums
    # EENet: features p_k (n_classes), max p_k, entropy (2 delta), vote (exact), earlier scores.
    n_classes = policy.n_classes_
    out = np.empty(n_exits)
    for k, coef in enumerate(policy.coefs_):
        coef = np.abs(np.asarray(coef, dtype=np.float64))
        feature_bounds = np.concatenate([np.full(n_classes + 1, delta), [2 * delta, 0.0], out[:k]])
        out[k] = 0.25 * float(coef @ feature_bounds) + 1e-12
    return out
