"""EENet (Ilhan et al., WACV 2024): learned exit utility scores, a budgeted exit distribution and
quantile thresholds (spec section 5).

For exit k (0-based) the features are ``z_k = [p_k, max p_k, entropy_k, vote_k, s_0 .. s_{k-1}]``.

- The **scorer** ``g_k`` gives the utility score ``s_k = sigmoid(w_k . z_k + b_k)``: the
  probability that exit k's prediction is correct. The scores are the policy's scores.
- The **assigner** ``h_k`` (a one-hidden-layer tanh MLP per exit) gives the exit assignment
  ``r̂_n = softmax_k h_k(z_nk)``; its mean over samples is the exit distribution ``pi``.
- Targets ``q_nk = 1[ŷ_nk == y_n]`` and ``r_nk = q_nk / sum_k' q_nk'`` (``1/K`` for every exit
  when none is correct).
- Losses (the paper's; ``BCE(s, q) = -q log s - (1 - q) log(1 - s)``)::

      L_CE     = -(1/NK) sum_nk r_nk log r̂_nk
      L_budget = |B - (1/N) sum_nk r̂_nk c_k| / B
      L_g      = (1/K) sum_nk w_nk BCE(s_nk, q_nk),
      w_nk     = (1 - sum_{k'<k} r̂_nk') / sum_n' (1 - sum_{k'<k} r̂_n'k')

  minimised alternately: the g step minimises ``L_g`` with ``w`` held fixed, the h step
  ``alpha_ce L_CE + alpha_cost L_budget`` with the scores held fixed (``w`` and the earlier
  scores are constants of the step that uses them, as in the published code).
- Thresholds: quantile thresholds (section 6) on ``s`` with ``pi``, after the distribution is
  calibrated to the budget (:func:`budget_counts`).

Two optimisers (``optimizer=``):

- ``"lbfgs"`` (default): full-batch L-BFGS with analytic gradients. The g step is one weighted
  logistic regression per exit (:func:`fit_scorer`). The h step is solved where its optimum
  lies (:func:`fit_assigner`): ``L_budget`` is an exact penalty at the authors' weights, so the
  optimum is ``min L_CE`` subject to an expected cost of exactly ``B``; eeopt solves that
  constrained problem smoothly by tilting the assigner's logits, ``r̂ = softmax(h - lam c)``
  with ``lam`` solved at every evaluation (:func:`budget_tilt`), instead of stepping onto the
  kink of ``|.|``, where L-BFGS stops early at a point that depends on the budget's last
  digits. ``alpha_cost="auto"`` (the default) trains the assigner at a few budgets ``B'``
  between ``B`` and the targets' own expected cost (each the paper's optimum for a smaller
  ``alpha_cost``), calibrates each to ``B`` and keeps the candidate most accurate on the
  fitting data (:func:`training_budgets`).
- ``"adam"``: the authors' recipe (:func:`train_adam`): Adam on minibatches, the g and h steps
  alternating every ``period`` epochs, early stopping.

``distribution="lp"`` replaces ``h`` by the linear programme
``max sum_nk x_nk s_nk  s.t.  sum_k x_nk = 1, x >= 0, (1/N) sum_nk x_nk c_k <= B``, solved
exactly by :func:`lp_exit_assignment` (Lagrangian breakpoints) or by cvxpy
(:func:`lp_exit_assignment_cvxpy`); ``x`` then plays the role of ``r̂``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax
from threadpoolctl import threadpool_limits

from eeopt import _validation as v
from eeopt import engine
from eeopt._progress import Progress
from eeopt.data import ExitData
from eeopt.methods.registry import MethodSpec, register
from eeopt.policy import Policy, decode_floats, encode_floats, param_floats
from eeopt.quantile import exit_counts, thresholds_from_counts
from eeopt.scores import softmax

#: Confidence features after the class probabilities: max probability, entropy, vote.
N_CONFIDENCE_FEATURES = 3
DISTRIBUTIONS = ("learned", "lp")
SOLVERS = ("exact", "cvxpy")
OPTIMIZERS = ("lbfgs", "adam")
#: alpha_cost="auto": the assigner is trained at B' = B + share * (B_r - B) for each share, B_r
#: the targets' expected cost, and the candidate most accurate on the fitting data is kept.
#: Share 0 is the paper's optimum at the authors' alpha_cost whenever L_budget is an exact
#: penalty (by a factor of 15 to 100 at the benchmark's budgets on the shipped data); the other
#: shares are its optima at smaller alpha_cost, down to 0 (share 1).
TRAINING_BUDGET_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The optimisers' defaults where an option is left at None. "adam" is the authors' config.py.
OPTIMIZER_DEFAULTS = {
    "lbfgs": {"l2": 1e-4, "max_iter": 100, "max_samples": 10_000, "alpha_cost": "auto"},
    "adam": {"l2": 1e-2, "max_iter": 1000, "max_samples": None, "alpha_cost": 1e-2},
}
#: The authors' Adam settings (their config.py), the defaults of optimizer="adam".
ADAM_DEFAULTS = {"learning_rate": 3e-5, "batch_size": 512, "period": 10, "n_iter_no_change": 100}
#: Share of uniform mass mixed into the distribution before tilting, so that tilting can reach
#: exits the distribution leaves empty; below 1/N per exit it changes no count by itself.
_FLOOR = 1e-12
#: Defaults of the options every optimiser shares (None in the spec: "not given", so that an
#: option the chosen distribution or optimiser would ignore is an error when given).
_MODEL_DEFAULTS = {"hidden": 16, "n_rounds": 2, "alpha_ce": 1e-3, "n_restarts": 1}

#: L-BFGS stopping rules besides max_iter: the losses are O(1), so these are near convergence.
_LBFGS_TOLERANCES = {"gtol": 1e-7, "ftol": 1e-10}
#: The h step's: L_CE changes by less than 1e-8 per iteration long before the exit distribution
#: moves in its third decimal (measured on the shipped data); tighter only costs time.
_ASSIGNER_TOLERANCES = {"gtol": 1e-7, "ftol": 1e-8}
#: Bisection range of the tilt, in units of the smallest positive cost step.
_TILT_RANGE = 200.0
#: Training budgets are kept this far (in units of costs[-1] - costs[0]) inside the cost range,
#: where the tilt lam that meets them is finite; the calibration then reaches the ends exactly.
_EDGE = 1e-3
#: Samples scored at a time when scoring a whole fitting set (bounds the feature copies).
_CHUNK = 65_536


# -- features, targets, scores ----------------------------------------------------------------
def base_features(data: ExitData, rows: slice | np.ndarray | None = None) -> list[np.ndarray]:
    """``[p_k, max p_k, entropy confidence, vote confidence]`` of every exit.

    Parameters
    ----------
    data : ExitData
    rows : slice or index array, optional
        Only these samples (the derived scores of ``data`` are computed once and sliced).

    Returns
    -------
    list of ndarray of shape (n_rows, n_classes + 3), float64, one per exit
    """
    rows = slice(None) if rows is None else rows
    probs = data.probs[rows]
    n_samples, n_exits, n_classes = probs.shape
    maxprob, entropy, vote = data.maxprob[rows], data.entropy[rows], data.vote[rows]
    features = []
    for k in range(n_exits):
        f = np.empty((n_samples, n_classes + N_CONFIDENCE_FEATURES))
        f[:, :n_classes] = probs[:, k]
        f[:, n_classes] = maxprob[:, k]
        f[:, n_classes + 1] = entropy[:, k]
        f[:, n_classes + 2] = vote[:, k]
        features.append(f)
    return features


def exit_targets(correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's targets from per-exit correctness ``(n_samples, n_exits)``.

    Returns
    -------
    q : ndarray of shape (n_samples, n_exits), float64
        1 where the exit is correct.
    r : ndarray of shape (n_samples, n_exits), float64
        ``q / sum_k q`` (each correct exit equally), or ``1/K`` everywhere when none is correct.
        Every row sums to 1.
    """
    q = correct.astype(np.float64)
    n_correct = q.sum(axis=1, keepdims=True)
    r = np.where(n_correct > 0, q / np.maximum(n_correct, 1.0), 1.0 / q.shape[1])
    return q, r


def scorer_inputs(features: np.ndarray, earlier_scores: np.ndarray) -> np.ndarray:
    """``z_k``: exit k's base features followed by the utility scores of exits ``0..k-1``."""
    return np.hstack([features, earlier_scores])


def utility_scores(
    features: list[np.ndarray], coefs: list[np.ndarray], intercepts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Utility scores ``s_k = sigmoid(w_k . z_k + b_k)``, computed exit by exit.

    Parameters
    ----------
    features : list of ndarray of shape (n_samples, n_classes + 3)
        :func:`base_features` of the exits to score (a prefix of the exits is allowed).
    coefs : list of ndarray, ``coefs[k]`` of shape (n_classes + 3 + k,)
    intercepts : ndarray of shape (>= len(features),)

    Returns
    -------
    logits, scores : ndarray of shape (n_samples, len(features))
    """
    n_samples = features[0].shape[0]
    n_exits = len(features)
    logits = np.empty((n_samples, n_exits))
    scores = np.empty((n_samples, n_exits))
    for k in range(n_exits):
        n_base = features[k].shape[1]
        a = features[k] @ coefs[k][:n_base] + intercepts[k]
        if k:
            a += scores[:, :k] @ coefs[k][n_base:]
        logits[:, k] = a
        scores[:, k] = expit(a)
    return logits, scores


def data_scores(data: ExitData, coefs: list[np.ndarray], intercepts: np.ndarray) -> np.ndarray:
    """Utility scores of every sample of ``data``, ``(n_samples, n_exits)``.

    Computed :data:`_CHUNK` samples at a time, so that the features (``n_classes + 3`` floats
    per sample and exit) are never built for a million samples at once.
    """
    scores = np.empty((data.n_samples, data.n_exits))
    for start in range(0, data.n_samples, _CHUNK):
        rows = slice(start, start + _CHUNK)
        scores[rows] = utility_scores(base_features(data, rows), coefs, intercepts)[1]
    return scores


def bce_weights(assignment: np.ndarray) -> np.ndarray:
    """``w_nk = (1 - sum_{k'<k} r̂_nk') / sum_n' (1 - sum_{k'<k} r̂_n'k')``, ``(n, n_exits)``.

    ``1 - sum_{k'<k} r̂_nk'`` is computed as the tail sum ``sum_{k'>=k} r̂_nk'`` (the same for
    a distribution, without cancellation). A column whose tails are all zero (an assignment that
    sends nobody to exit k or later, as the LP's can) weights every sample equally.
    """
    tails = np.cumsum(assignment[:, ::-1], axis=1)[:, ::-1]
    totals = tails.sum(axis=0)
    n_samples = assignment.shape[0]
    safe = np.where(totals > 0, totals, 1.0)
    return np.where(totals > 0, tails / safe, 1.0 / n_samples)


def eenet_losses(
    scorer_logits: np.ndarray,
    assignment_logits: np.ndarray,
    correct: np.ndarray,
    costs: np.ndarray,
    budget: float,
) -> dict[str, float]:
    """The paper's three losses (module docstring) from the scorer's and assigner's logits.

    Parameters
    ----------
    scorer_logits : ndarray of shape (n_samples, n_exits)
        ``w_k . z_k + b_k``; ``s = sigmoid(scorer_logits)``.
    assignment_logits : ndarray of shape (n_samples, n_exits)
        ``h_k(z_k)``; ``r̂ = softmax_k(assignment_logits)``.
    correct : ndarray of shape (n_samples, n_exits), bool
    costs : ndarray of shape (n_exits,)
    budget : float

    Returns
    -------
    dict with keys ``"L_g"``, ``"L_CE"``, ``"L_budget"``
    """
    n_samples, n_exits = correct.shape
    q, r = exit_targets(correct)
    log_assignment = log_softmax(assignment_logits, axis=1)
    assignment = np.exp(log_assignment)
    # BCE(sigmoid(a), q) = softplus(a) - q a: finite for every a.
    bce = np.logaddexp(0.0, scorer_logits) - q * scorer_logits
    weights = bce_weights(assignment)
    mean_cost = float((assignment @ costs).mean())
    return {
        "L_g": float((weights * bce).sum() / n_exits),
        "L_CE": float(-(r * log_assignment).sum() / (n_samples * n_exits)),
        "L_budget": abs(budget - mean_cost) / budget,
    }


# -- the g step: one weighted logistic regression per exit ------------------------------------
def scorer_loss(
    params: np.ndarray,
    inputs: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray,
    n_exits: int,
    l2: float,
) -> tuple[float, np.ndarray]:
    """Exit k's share of ``L_g`` plus ``(l2/2) ||params||^2``, and its gradient.

    ``(1/K) sum_n w_nk BCE(sigmoid(z_nk . coef + bias), q_nk)`` with ``params = [coef, bias]``.

    Parameters
    ----------
    params : ndarray of shape (n_features + 1,)
    inputs : ndarray of shape (n_samples, n_features)
        ``z_k``.
    target : ndarray of shape (n_samples,)
        ``q_k``.
    weights : ndarray of shape (n_samples,)
        ``w_k`` (held fixed).
    """
    logits = inputs @ params[:-1] + params[-1]
    bce = np.logaddexp(0.0, logits) - target * logits
    loss = float(weights @ bce) / n_exits + 0.5 * l2 * float(params @ params)
    d_logits = weights * (expit(logits) - target) / n_exits
    grad = np.empty_like(params)
    grad[:-1] = inputs.T @ d_logits
    grad[-1] = d_logits.sum()
    grad += l2 * params
    return loss, grad


def fit_scorer(
    features: list[np.ndarray],
    target: np.ndarray,
    weights: np.ndarray,
    coefs: list[np.ndarray],
    intercepts: np.ndarray,
    l2: float,
    max_iter: int,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, int]:
    """The g step: exits in order, each a weighted logistic regression (L-BFGS, warm start)
    whose inputs hold the scores of the exits before it.

    Parameters
    ----------
    features : list of ndarray of shape (n_samples, n_classes + 3)
    target : ndarray of shape (n_samples, n_exits)
        ``q``.
    weights : ndarray of shape (n_samples, n_exits)
        ``w`` (:func:`bce_weights` of the current assignment), held fixed.
    coefs, intercepts
        Starting point (``coefs[k]`` of shape (n_classes + 3 + k,)).

    Returns
    -------
    coefs, intercepts, scores : the fitted scorer and its scores ``(n_samples, n_exits)``
    iterations : int
        L-BFGS iterations, summed over the exits.
    """
    n_samples, n_exits = target.shape
    coefs, intercepts = list(coefs), np.array(intercepts, dtype=np.float64)
    scores = np.empty((n_samples, n_exits))
    iterations = 0
    for k in range(n_exits):
        inputs = scorer_inputs(features[k], scores[:, :k])
        res = minimize(
            scorer_loss,
            np.r_[coefs[k], intercepts[k]],
            args=(inputs, target[:, k], weights[:, k], n_exits, l2),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, **_LBFGS_TOLERANCES},
        )
        iterations += res.nit
        coefs[k], intercepts[k] = res.x[:-1], res.x[-1]
        scores[:, k] = expit(inputs @ coefs[k] + intercepts[k])
    return coefs, intercepts, scores, iterations


# -- the h step: one small MLP per exit, coupled by the softmax over exits --------------------
def _assigner_shapes(input_dims: list[int], hidden: int) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    for dim in input_dims:
        shapes += [(dim, hidden), (hidden,), (hidden,), ()]
    return shapes


def _unpack(theta: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(theta[start : start + size].reshape(shape))
        start += size
    return out


def init_assigner(input_dims: list[int], hidden: int, rng: np.random.Generator) -> np.ndarray:
    """Random initial assigner parameters (Glorot-scaled first layer, small second layer)."""
    parts = []
    for dim in input_dims:
        parts += [
            rng.normal(scale=1.0 / np.sqrt(dim), size=dim * hidden),
            np.zeros(hidden),
            rng.normal(scale=1.0 / np.sqrt(hidden), size=hidden) * 0.1,
            np.zeros(1),
        ]
    return np.concatenate(parts)


def _assigner_forward(
    theta: np.ndarray, inputs: list[np.ndarray], hidden: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Logits ``(n_samples, n_exits)``, hidden activations and unpacked layers."""
    layers = _unpack(theta, _assigner_shapes([z.shape[1] for z in inputs], hidden))
    logits = np.empty((inputs[0].shape[0], len(inputs)))
    activations = []
    for k, z in enumerate(inputs):
        w1, b1, w2, b2 = layers[4 * k : 4 * k + 4]
        act = z @ w1
        act += b1
        np.tanh(act, out=act)
        activations.append(act)
        logits[:, k] = act @ w2 + b2
    return logits, activations, layers


def _assigner_backward(
    d_logits: np.ndarray,
    inputs: list[np.ndarray],
    activations: list[np.ndarray],
    layers: list[np.ndarray],
) -> np.ndarray:
    """Gradient of the parameters from the gradient of the logits (packed like theta)."""
    grads = []
    for k, z in enumerate(inputs):
        w2 = layers[4 * k + 2]
        act, g = activations[k], d_logits[:, k]
        d_pre = act * act
        np.subtract(1.0, d_pre, out=d_pre)
        d_pre *= g[:, None]
        d_pre *= w2
        grads += [(z.T @ d_pre).ravel(), d_pre.sum(axis=0), act.T @ g, np.array([g.sum()])]
    return np.concatenate(grads)


def assigner_logits(theta: np.ndarray, inputs: list[np.ndarray], hidden: int) -> np.ndarray:
    """``h_k(z_k)`` for every exit, ``(n_samples, n_exits)``."""
    return _assigner_forward(theta, inputs, hidden)[0]


def _ce_logit_gradient(assignment: np.ndarray, target: np.ndarray) -> np.ndarray:
    # d/d logits of -(1/NK) sum_k r_k log softmax_k = (r̂ sum_k r_k - r) / NK.
    n_samples, n_exits = target.shape
    return (assignment * target.sum(axis=1, keepdims=True) - target) / (n_samples * n_exits)


def assignment_loss(
    theta: np.ndarray,
    inputs: list[np.ndarray],
    target: np.ndarray,
    costs: np.ndarray,
    budget: float,
    alpha_ce: float,
    alpha_cost: float,
    l2: float,
    hidden: int,
) -> tuple[float, np.ndarray]:
    """``alpha_ce L_CE + alpha_cost L_budget + (l2/2) ||theta||^2`` and its gradient.

    The paper's h loss with its kink at ``cost = B`` (the gradient there takes the sign 0).
    The Adam recipe minimises it on minibatches; the L-BFGS path uses it only where the optimum
    lies off the kink (:func:`fit_assigner`).

    Parameters
    ----------
    theta : ndarray
        Packed parameters of every exit's MLP (:func:`init_assigner`).
    inputs : list of ndarray, ``inputs[k]`` of shape (n_samples, n_classes + 3 + k)
        ``z_k`` (the scores in them are held fixed).
    target : ndarray of shape (n_samples, n_exits)
        ``r``.
    """
    logits, activations, layers = _assigner_forward(theta, inputs, hidden)
    n_samples, n_exits = target.shape
    log_assignment = log_softmax(logits, axis=1)
    assignment = np.exp(log_assignment)
    ce = -float((target * log_assignment).sum()) / (n_samples * n_exits)
    per_sample_cost = assignment @ costs
    gap = float(per_sample_cost.mean()) - budget
    loss = alpha_ce * ce + alpha_cost * abs(gap) / budget + 0.5 * l2 * float(theta @ theta)
    d_logits = alpha_ce * _ce_logit_gradient(assignment, target)
    # d mean_cost / d logits_nk = r̂_nk (c_k - sum_j r̂_nj c_j) / N; |.|' = sign (0 at the kink).
    d_logits += (alpha_cost * np.sign(gap) / (budget * n_samples)) * (
        assignment * (costs[None, :] - per_sample_cost[:, None])
    )
    grad = _assigner_backward(d_logits, inputs, activations, layers) + l2 * theta
    return loss, grad


def relative_costs(costs: np.ndarray) -> np.ndarray:
    """``(c_k - c_0) / (c_{K-1} - c_0)`` in [0, 1] (all zero when every exit costs the same)."""
    span = costs[-1] - costs[0]
    return (costs - costs[0]) / span if span > 0 else np.zeros_like(costs)


def budget_tilt(
    logits: np.ndarray, rel_costs: np.ndarray, target_cost: float, start: float = 0.0
) -> float:
    """The tilt ``lam`` with ``mean_n sum_k softmax_k(logits_n - lam c)_k c_k = target_cost``.

    The expected cost falls strictly from ``max c`` to ``min c`` as ``lam`` grows (its
    derivative is minus the mean per-sample variance of ``c``), so the root is unique for
    ``target_cost`` inside the range. Newton's method from ``start`` (the last root: a few
    steps), kept inside the bracket it learns, bisecting when a step would leave it.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_exits)
    rel_costs : ndarray of shape (n_exits,)
        :func:`relative_costs`; ``target_cost`` in the same units, strictly inside (0, 1).
    """
    lo, hi = -np.inf, np.inf
    lam = float(start)
    for _ in range(200):
        assignment = softmax(logits - lam * rel_costs)
        mean_cost = assignment @ rel_costs
        gap = float(mean_cost.mean()) - target_cost
        if abs(gap) <= 1e-13:
            break
        slope = -float((assignment * (rel_costs - mean_cost[:, None]) ** 2).sum(axis=1).mean())
        if gap > 0:
            lo = lam
        else:
            hi = lam
        # A flat slope (every sample's assignment saturated on one exit) gives no Newton step:
        # bisect instead.
        with np.errstate(over="ignore"):  # a near-flat slope: the step is inf, bisected below
            step = lam - gap / slope if slope != 0 else np.nan
        if not lo < step < hi:  # also inf and NaN
            if np.isfinite(lo) and np.isfinite(hi):
                step = 0.5 * (lo + hi)
            elif np.isfinite(lo):
                step = lo + max(1.0, abs(lo))
            else:
                step = hi - max(1.0, abs(hi))
        if step == lam:
            break
        lam = step
    return lam


def constrained_assignment_loss(
    theta: np.ndarray,
    inputs: list[np.ndarray],
    target: np.ndarray,
    rel_costs: np.ndarray,
    target_cost: float | None,
    l2: float,
    hidden: int,
    ce_weight: float = 1.0,
    state: dict[str, float] | None = None,
) -> tuple[float, np.ndarray]:
    """``ce_weight L_CE + (l2/2) ||theta||^2`` at an expected cost of exactly ``target_cost``.

    The assignment is ``r̂ = softmax(h(z) - lam c)`` with ``lam = lam(theta)`` solved by
    :func:`budget_tilt`, so every evaluation meets the budget and the loss is smooth in theta.
    Its gradient includes ``lam``'s dependence on theta (implicit differentiation of the
    budget equation):

        dL/dh = dL/dh|_lam - (dL/dlam / dcost/dlam) dcost/dh.

    The ratio ``dL/dlam / dcost/dlam`` is the Lagrange multiplier of the budget (the change of
    ``L_CE`` per unit of relative cost); it is written to ``state["multiplier"]`` with
    ``state["tilt"] = lam``, and ``state["tilt"]`` on entry starts the root search.
    ``target_cost=None`` (every exit costs the same) fixes ``lam = 0``.

    Parameters
    ----------
    rel_costs : ndarray of shape (n_exits,)
        :func:`relative_costs`; ``target_cost`` in the same units, strictly inside (0, 1).
    """
    state = {} if state is None else state
    logits, activations, layers = _assigner_forward(theta, inputs, hidden)
    n_samples, n_exits = target.shape
    lam = 0.0
    if target_cost is not None:
        lam = budget_tilt(logits, rel_costs, target_cost, state.get("tilt", 0.0))
    log_assignment = log_softmax(logits - lam * rel_costs, axis=1)
    assignment = np.exp(log_assignment)
    ce = -float((target * log_assignment).sum()) / (n_samples * n_exits)
    loss = ce_weight * ce + 0.5 * l2 * float(theta @ theta)
    d_logits = ce_weight * _ce_logit_gradient(assignment, target)
    multiplier = 0.0
    if target_cost is not None:
        deviation = rel_costs[None, :] - (assignment @ rel_costs)[:, None]
        d_cost = assignment * deviation / n_samples
        d_cost_d_lam = -float((d_cost * rel_costs[None, :]).sum())
        d_loss_d_lam = -float((d_logits * rel_costs[None, :]).sum())
        if d_cost_d_lam < 0:
            multiplier = d_loss_d_lam / d_cost_d_lam
            d_logits = d_logits - multiplier * d_cost
    state["tilt"], state["multiplier"] = lam, multiplier
    grad = _assigner_backward(d_logits, inputs, activations, layers) + l2 * theta
    return loss, grad


@dataclass
class AssignerFit:
    """What :func:`fit_assigner` returns."""

    theta: np.ndarray
    #: ``log r̂`` up to a constant per row (the tilted logits), ``(n_samples, n_exits)``.
    logits: np.ndarray
    #: ``r̂``, ``(n_samples, n_exits)``: rows sum to 1.
    assignment: np.ndarray
    iterations: int
    #: ``dL_CE / d(relative cost)`` at the training budget (0 off the budget).
    multiplier: float
    #: ``"constrained"`` (expected cost = training budget) or ``"penalised"`` (above it).
    solution: str


def fit_assigner(
    theta: np.ndarray,
    inputs: list[np.ndarray],
    target: np.ndarray,
    costs: np.ndarray,
    train_budget: float,
    l2: float,
    hidden: int,
    max_iter: int,
    alpha_ce: float,
    penalty: float | None = None,
) -> AssignerFit:
    """The h step by L-BFGS: the minimum of ``L_CE + (alpha_cost/alpha_ce) L_budget + (l2/2)
    ||theta||^2`` (the paper's h loss divided by ``alpha_ce``), found where it lies.

    1. The optimum at an expected cost of exactly ``train_budget``
       (:func:`constrained_assignment_loss`): smooth, so L-BFGS converges; with
       ``penalty=None`` this is the answer (``alpha_cost`` large enough, or a training budget
       chosen by ``alpha_cost="auto"``).
    2. With a ``penalty = alpha_cost / alpha_ce``: if it is at least the budget's multiplier
       (in the same units), ``L_budget`` is an exact penalty and step 1's optimum is the
       penalised one. Otherwise the penalised optimum lies off the budget, on the side where
       ``L_CE`` falls (above it when ``B`` is below the targets' cost), where ``L_budget`` is
       smooth: L-BFGS on :func:`assignment_loss` from step 1's point (kept if it ends on that
       side; else step 1's stands).

    ``alpha_ce = 0`` leaves the penalty and the L2 term only: the constrained optimum is then
    the smallest ``theta`` that meets the budget.

    Parameters
    ----------
    costs : ndarray of shape (n_exits,)
    train_budget : float
        The expected cost aimed at, strictly inside ``(costs[0], costs[-1])`` unless every
        exit costs the same.
    """
    rel_costs = relative_costs(costs)
    span = costs[-1] - costs[0]
    target_cost = (train_budget - costs[0]) / span if span > 0 else None
    ce_weight = 1.0 if alpha_ce > 0 else 0.0
    state: dict[str, float] = {}
    options = {"maxiter": max_iter, **_ASSIGNER_TOLERANCES}
    args = (inputs, target, rel_costs, target_cost, l2, hidden, ce_weight, state)
    res = minimize(
        constrained_assignment_loss, theta, args=args, jac=True, method="L-BFGS-B", options=options
    )
    theta, iterations = res.x, int(res.nit)
    constrained_assignment_loss(theta, *args)  # the state (tilt, multiplier) at the solution
    logits = assigner_logits(theta, inputs, hidden) - state["tilt"] * rel_costs
    assignment = np.exp(log_softmax(logits, axis=1))
    fit = AssignerFit(theta, logits, assignment, iterations, state["multiplier"], "constrained")
    if penalty is None or target_cost is None or alpha_ce == 0:
        return fit
    # L_budget = |u - u_B| span / B in relative cost u: its slope is penalty * span / B.
    if penalty * span / train_budget >= abs(fit.multiplier):
        return fit
    # Fold the tilt into the last-layer biases: the same assignment, now with lam = 0.
    theta = theta.copy()
    layers = _unpack(theta, _assigner_shapes([z.shape[1] for z in inputs], hidden))
    for k in range(len(inputs)):
        layers[4 * k + 3][...] -= state["tilt"] * rel_costs[k]
    res = minimize(
        assignment_loss,
        theta,
        args=(inputs, target, costs, train_budget, 1.0, penalty, l2, hidden),
        jac=True,
        method="L-BFGS-B",
        options=options,
    )
    logits = assigner_logits(res.x, inputs, hidden)
    assignment = np.exp(log_softmax(logits, axis=1))
    # L_CE falls with the cost (multiplier < 0: budgets below the targets' cost) or rises with
    # it; the penalised optimum lies on that side of the budget, or the kink holds it.
    side = -np.sign(fit.multiplier)
    if side * (float((assignment @ costs).mean()) - train_budget) <= 0:
        return fit
    return AssignerFit(res.x, logits, assignment, iterations + int(res.nit), 0.0, "penalised")


# -- the authors' recipe: Adam on minibatches -------------------------------------------------
class Adam:
    """Adam (Kingma & Ba) as torch.optim.Adam computes it: bias-corrected moments, and
    ``weight_decay`` added to the gradient (L2, not AdamW's decoupled decay). One instance per
    parameter array, updated in place."""

    def __init__(self, params: np.ndarray, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.t = 0

    def step(self, grad: np.ndarray) -> None:
        b1, b2 = self.betas
        self.t += 1
        self.m = b1 * self.m + (1 - b1) * grad
        self.v = b2 * self.v + (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        self.params -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def minibatch_losses(
    scorer_params: list[np.ndarray],
    theta: np.ndarray,
    features: list[np.ndarray],
    correct: np.ndarray,
    costs: np.ndarray,
    budget: float,
    hidden: int,
) -> tuple[dict[str, float], list[np.ndarray], np.ndarray]:
    """Forward pass on one minibatch: the paper's three losses (:func:`eenet_losses`), the
    scorer inputs ``z_k`` and the assigner's logits.

    ``scorer_params[k] = [w_k, b_k]``; the scores of earlier exits enter ``z_k`` as constants.
    """
    n_samples, n_exits = correct.shape
    scorer_logits = np.empty((n_samples, n_exits))
    scores = np.empty((n_samples, n_exits))
    inputs = []
    for k in range(n_exits):
        z = scorer_inputs(features[k], scores[:, :k])
        inputs.append(z)
        scorer_logits[:, k] = z @ scorer_params[k][:-1] + scorer_params[k][-1]
        scores[:, k] = expit(scorer_logits[:, k])
    logits = assigner_logits(theta, inputs, hidden)
    return eenet_losses(scorer_logits, logits, correct, costs, budget), inputs, logits


@dataclass
class AdamFit:
    """What :func:`train_adam` returns: the parameters of the best epoch and the history."""

    coefs: list[np.ndarray]
    intercepts: np.ndarray
    theta: np.ndarray
    #: Per epoch, the mean over its minibatches of ``L_g``, ``L_CE``, ``L_budget`` and of the
    #: total ``L_g + alpha_ce L_CE + alpha_cost L_budget``; ``phase`` "g" or "h".
    epochs: dict[str, list]
    best_epoch: int


def train_adam(
    features: list[np.ndarray],
    correct: np.ndarray,
    costs: np.ndarray,
    budget: float,
    theta: np.ndarray,
    rng: np.random.Generator,
    *,
    hidden: int,
    alpha_ce: float,
    alpha_cost: float,
    l2: float,
    learning_rate: float,
    batch_size: int,
    max_epochs: int,
    period: int,
    n_iter_no_change: int,
    on_epoch=None,
) -> AdamFit:
    """The authors' training loop (their ``fit_exit_assigner``), without its bugs.

    Epochs alternate in blocks of ``period``: the first block updates the scorer on ``L_g``
    (``w`` from the current assignment, held fixed), the next the assigner on
    ``alpha_ce L_CE + alpha_cost L_budget`` (scores held fixed), and so on. Each epoch visits
    the samples in a new random order (``rng``) in minibatches of ``batch_size``; each
    minibatch takes one Adam step of the block's parameters with weight decay ``l2``. The loss
    of an epoch is the mean of its minibatches' totals ``L_g + alpha_ce L_CE + alpha_cost
    L_budget``; the parameters of the best epoch are kept, and training stops after
    ``n_iter_no_change`` epochs without a better one, or after ``max_epochs``.

    Differences from the published loop, which does not run as printed: gradients are reset
    at every step (it never calls ``zero_grad``), the best parameters are copied (it keeps a
    reference to the model being trained, so "best" was the last), the epoch loss is the
    same objective in both phases (it compared the g loss of one block with the h loss of the
    next), and the samples are reshuffled every epoch (it drew one order for all epochs).

    Parameters
    ----------
    features : list of ndarray of shape (n_samples, n_classes + 3)
    correct : ndarray of shape (n_samples, n_exits), bool
    theta : ndarray
        Initial assigner parameters (:func:`init_assigner`); the scorer starts at zero.
    on_epoch : callable, optional
        Called after each epoch with the epoch's losses (a progress bar).
    """
    n_samples, n_exits = correct.shape
    q, r = exit_targets(correct)
    scorer_params = [np.zeros(f.shape[1] + k + 1) for k, f in enumerate(features)]
    theta = np.array(theta, dtype=np.float64)
    scorer_opt = [Adam(p, learning_rate) for p in scorer_params]
    assigner_opt = Adam(theta, learning_rate)
    epochs: dict[str, list] = {"L_g": [], "L_CE": [], "L_budget": [], "total": [], "phase": []}
    best = (np.inf, -1, [p.copy() for p in scorer_params], theta.copy())
    for epoch in range(max_epochs):
        phase = "g" if (epoch // period) % 2 == 0 else "h"
        order = rng.permutation(n_samples)
        sums = np.zeros(4)
        n_batches = 0
        for start in range(0, n_samples, batch_size):
            rows = order[start : start + batch_size]
            batch = [f[rows] for f in features]
            losses, inputs, logits = minibatch_losses(
                scorer_params, theta, batch, correct[rows], costs, budget, hidden
            )
            total = losses["L_g"] + alpha_ce * losses["L_CE"] + alpha_cost * losses["L_budget"]
            sums += (losses["L_g"], losses["L_CE"], losses["L_budget"], total)
            n_batches += 1
            if phase == "g":
                weights = bce_weights(np.exp(log_softmax(logits, axis=1)))
                for k in range(n_exits):
                    _, grad = scorer_loss(
                        scorer_params[k], inputs[k], q[rows, k], weights[:, k], n_exits, l2
                    )
                    scorer_opt[k].step(grad)
            else:
                _, grad = assignment_loss(
                    theta, inputs, r[rows], costs, budget, alpha_ce, alpha_cost, l2, hidden
                )
                assigner_opt.step(grad)
        means = sums / n_batches
        for key, value in zip(("L_g", "L_CE", "L_budget", "total"), means, strict=True):
            epochs[key].append(float(value))
        epochs["phase"].append(phase)
        if on_epoch is not None:
            on_epoch(epoch, means)
        if means[3] < best[0]:
            best = (float(means[3]), epoch, [p.copy() for p in scorer_params], theta.copy())
        elif epoch - best[1] >= n_iter_no_change:
            break
    _, best_epoch, params, theta = best
    coefs = [p[:-1].copy() for p in params]
    intercepts = np.array([p[-1] for p in params])
    return AdamFit(coefs, intercepts, theta, epochs, best_epoch)


# -- the LP distribution ----------------------------------------------------------------------
def lp_exit_assignment(
    scores: np.ndarray, costs: np.ndarray, budget: float
) -> tuple[np.ndarray, float]:
    """Exact solution of the budgeted assignment LP by Lagrangian relaxation.

    ``max sum_nk x_nk s_nk  s.t.  sum_k x_nk = 1, x >= 0, (1/N) sum_nk x_nk c_k <= B``.

    The budget is the only coupling constraint. For a multiplier ``lam >= 0`` every sample
    takes ``argmax_k s_nk - lam c_k``; as ``lam`` grows each sample steps down the upper
    envelope of its lines ``s_nk - lam c_k`` to cheaper exits. All envelope breakpoints are
    sorted once; the optimal ``lam`` is the breakpoint where the total cost crosses ``N B``, and
    the sample switching there is split so that the budget holds with equality. At most one
    sample is fractional. ``O(N K^2 + N K log(N K))``.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_exits)
    costs : ndarray of shape (n_exits,), non-decreasing
    budget : float, ``costs[0] <= budget``

    Returns
    -------
    assignment : ndarray of shape (n_samples, n_exits)
        The optimal ``x``; rows sum to 1.
    value : float
        ``sum_nk x_nk s_nk``.
    """
    n_samples, n_exits = scores.shape
    rows = np.arange(n_samples)
    # At lam = 0+ the best line, ties to the first (cheapest) exit.
    start = scores.argmax(axis=1)
    current = start.copy()
    event_lam, event_sample, event_from, event_to = [], [], [], []
    for _ in range(n_exits - 1):
        cost_now = costs[current]
        cost_drop = cost_now[:, None] - costs[None, :]
        score_drop = scores[rows, current][:, None] - scores
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = np.where(
                cost_drop > 0, score_drop / np.where(cost_drop > 0, cost_drop, 1.0), np.inf
            )
        next_lam = crossing.min(axis=1)
        active = np.isfinite(next_lam)
        if not active.any():
            break
        # Several lines through one point: go straight to the cheapest (the first index).
        nxt = (crossing == next_lam[:, None]).argmax(axis=1)
        idx = np.flatnonzero(active)
        event_lam.append(next_lam[idx])
        event_sample.append(idx)
        event_from.append(current[idx])
        event_to.append(nxt[idx])
        current = np.where(active, nxt, current)

    assignment = np.zeros((n_samples, n_exits))
    final = start.copy()
    total_budget = n_samples * budget
    total = float(costs[start].sum())
    if total > total_budget and event_lam:
        lam = np.concatenate(event_lam)
        sample = np.concatenate(event_sample)
        src = np.concatenate(event_from)
        dst = np.concatenate(event_to)
        order = np.lexsort((sample, lam))
        sample, src, dst = sample[order], src[order], dst[order]
        totals = total - np.cumsum(costs[src] - costs[dst])
        crossed = np.flatnonzero(totals <= total_budget)
        split = int(crossed[0]) if crossed.size else sample.size
        # Events before the split apply in full: each sample's last one gives its exit.
        last = np.full(n_samples, -1)
        np.maximum.at(last, sample[:split], np.arange(split))
        moved = last >= 0
        final[moved] = dst[last[moved]]
        if split < sample.size:
            before = total if split == 0 else totals[split - 1]
            share = (before - total_budget) / (costs[src[split]] - costs[dst[split]])
            share = min(max(share, 0.0), 1.0)
            n = sample[split]
            assignment[rows, final] = 1.0
            assignment[n, src[split]] = 1.0 - share
            assignment[n, dst[split]] = share
            return assignment, float((assignment * scores).sum())
    assignment[rows, final] = 1.0
    return assignment, float((assignment * scores).sum())


def lp_exit_assignment_cvxpy(
    scores: np.ndarray, costs: np.ndarray, budget: float
) -> tuple[np.ndarray, float]:
    """The same LP stated in cvxpy (HiGHS if installed, else Clarabel, else cvxpy's default).

    Same returns as :func:`lp_exit_assignment`; the assignment is as exact as the solver.
    """
    import cvxpy as cp

    n_samples, n_exits = scores.shape
    x = cp.Variable((n_samples, n_exits), nonneg=True)
    objective = cp.Maximize(cp.sum(cp.multiply(scores, x)))
    constraints = [cp.sum(x, axis=1) == 1, cp.sum(x @ costs) / n_samples <= budget]
    problem = cp.Problem(objective, constraints)
    installed = cp.installed_solvers()
    solver = next((s for s in ("HIGHS", "CLARABEL") if s in installed), None)
    problem.solve(solver=solver)
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"cvxpy could not solve the EENet LP: status {problem.status}.")
    assignment = np.clip(np.asarray(x.value, dtype=np.float64), 0.0, None)
    assignment /= assignment.sum(axis=1, keepdims=True)
    return assignment, float(problem.value)


# -- calibration of the distribution to the budget --------------------------------------------
def _count_cost(counts: np.ndarray, costs: np.ndarray) -> float:
    # The engine's own formula, so that the comparison with the budget is the realised one.
    return float(engine.mean_cost_from_counts(counts, costs))


def budget_counts(
    fractions: np.ndarray, costs: np.ndarray, budget: float, n_samples: int
) -> tuple[np.ndarray, float]:
    """Exit counts close to ``fractions`` whose mean cost is at most ``budget``, not wasted.

    1. **Tilt.** ``pi_t ∝ pi exp(-t c_k)``: for ``t > 0`` mass moves to cheaper exits, for
       ``t < 0`` to dearer ones. It is the distribution closest to ``pi`` in KL divergence
       among those with its expected cost (the I-projection onto the budget line). The counts
       are section 6's (``floor(pi_k N)``, the rest at the last exit); bisection on ``t`` finds
       the smallest ``t`` whose counts cost at most ``budget``. A ``1e-12`` uniform floor lets
       the tilt reach exits that ``pi`` leaves empty.
    2. **Fine-tune.** Going from the first exit to the last-but-one, move samples from exit k
       to the next dearer exit (``k -> j``, j the first exit after k with ``c_j > c_k``, so
       that a run of equal-cost exits does not stop them) while the budget allows. Afterwards
       no single sample can move to a dearer exit within the budget, so the spare budget is
       below ``max_k (c_{k+1} - c_k) / N``: one sample's cost step.

    Returns
    -------
    counts : ndarray of shape (n_exits,), int64, summing to ``n_samples``
    tilt : float
        The tilt ``t`` (in units of ``1 / min positive cost step``); 0 = no change.
    """
    n_exits = costs.shape[0]
    steps = np.diff(costs)
    positive = steps[steps > 0]
    if positive.size == 0:  # every exit costs the same: every assignment meets the budget
        return exit_counts(fractions, n_samples), 0.0
    base = np.log((1.0 - _FLOOR) * fractions + _FLOOR / n_exits)
    relative_costs = (costs - costs[0]) / positive.min()

    def counts_at(t: float) -> np.ndarray:
        return exit_counts(np.exp(log_softmax(base - t * relative_costs)), n_samples)

    def cost_at(t: float) -> float:
        return _count_cost(counts_at(t), costs)

    lo, hi = -_TILT_RANGE, _TILT_RANGE  # invariant: cost(lo) > budget >= cost(hi)
    if cost_at(lo) <= budget:
        tilt = lo
    elif cost_at(hi) > budget:
        tilt = hi
    else:
        if cost_at(0.0) <= budget:
            hi = 0.0
        else:
            lo = 0.0
        while hi - lo > 1e-12 * max(1.0, abs(lo), abs(hi)):
            mid = 0.5 * (lo + hi)
            if cost_at(mid) <= budget:
                hi = mid
            else:
                lo = mid
        tilt = hi
    return _fine_tune(counts_at(tilt), costs, budget), float(tilt)


def _moved(counts: np.ndarray, k: int, j: int, n_moved: int) -> np.ndarray:
    """``counts`` with ``n_moved`` samples moved from exit k to exit j."""
    trial = counts.copy()
    trial[k] -= n_moved
    trial[j] += n_moved
    return trial


def _fine_tune(counts: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    counts = counts.copy()
    n_exits = costs.shape[0]
    # Over budget only at the tilt's end (floor remainders at the last exit): move samples from
    # the dearest occupied exit to the first until the budget holds.
    while _count_cost(counts, costs) > budget:
        j = int(np.flatnonzero(counts)[-1])
        if costs[j] == costs[0]:
            break
        counts[j] -= 1
        counts[0] += 1
    for k in range(n_exits - 1):
        dearer = np.flatnonzero(costs[k + 1 :] > costs[k])
        if dearer.size == 0 or counts[k] == 0:
            continue
        j = k + 1 + int(dearer[0])
        step = costs[j] - costs[k]
        spare = budget - _count_cost(counts, costs)
        moves = int(min(counts[k], max(spare, 0.0) * counts.sum() // step))

        # The estimate can be off by one in the last digits either way.
        while moves > 0 and _count_cost(_moved(counts, k, j, moves), costs) > budget:
            moves -= 1
        while moves < counts[k] and _count_cost(_moved(counts, k, j, moves + 1), costs) <= budget:
            moves += 1
        counts[k] -= moves
        counts[j] += moves
    return counts


# -- the policy -------------------------------------------------------------------------------
class EENetPolicy(Policy):
    """Quantile thresholds on EENet's learned utility scores.

    Attributes
    ----------
    coefs_ : list of ndarray, ``coefs_[k]`` of shape (n_classes + 3 + k,)
        ``w_k``: weights of ``[p_k, max p_k, entropy_k, vote_k, s_0 .. s_{k-1}]``.
    intercepts_ : ndarray of shape (n_exits,)
        ``b_k``.
    """

    def __init__(
        self,
        method,
        thresholds,
        costs,
        n_classes,
        fit_info=None,
        fit_params=None,
        *,
        coefs,
        intercepts,
    ):
        super().__init__(method, thresholds, costs, n_classes, fit_info, fit_params)
        self.coefs_ = [np.asarray(c, dtype=np.float64) for c in coefs]
        self.intercepts_ = np.asarray(intercepts, dtype=np.float64)

    def requires(self) -> tuple[str, ...]:
        return ("probs",)

    def compute_scores(self, data: ExitData) -> np.ndarray:
        """Utility scores ``s_k``, exit by exit, ``(n_samples, n_exits)`` in [0, 1]."""
        return data_scores(data, self.coefs_, self.intercepts_)

    def _params(self) -> dict[str, Any]:
        return {
            "coefs": [encode_floats(c) for c in self.coefs_],
            "intercepts": encode_floats(self.intercepts_),
        }

    @classmethod
    def _from_params(cls, common: dict[str, Any], params: dict[str, Any]) -> EENetPolicy:
        n_exits, n_classes = common["costs"].shape[0], common["n_classes"]
        coefs = params.get("coefs")
        if not isinstance(coefs, list) or len(coefs) != n_exits:
            raise ValueError(
                f"policy field 'params.coefs' must be a list of {n_exits} weight vectors (one "
                f"per exit), got {type(coefs).__name__} of length "
                f"{len(coefs) if isinstance(coefs, list) else 'n/a'}."
            )
        size = n_classes + N_CONFIDENCE_FEATURES
        return cls(
            **common,
            coefs=[
                decode_floats(c, f"params.coefs[{k}]", length=size + k, finite=True)
                for k, c in enumerate(coefs)
            ],
            intercepts=param_floats(params, "intercepts", length=n_exits),
        )


# -- training: the alternation, the candidates, the restarts ----------------------------------
@dataclass(frozen=True)
class Settings:
    """Validated training options of :func:`fit_eenet` (the optimiser's defaults filled in)."""

    distribution: str = "learned"
    solver: str = "exact"
    optimizer: str = "lbfgs"
    hidden: int = 16
    max_iter: int = 100
    n_rounds: int = 2
    alpha_ce: float = 1e-3
    alpha_cost: float | str = "auto"
    l2: float = 1e-4
    learning_rate: float = ADAM_DEFAULTS["learning_rate"]
    batch_size: int = ADAM_DEFAULTS["batch_size"]
    period: int = ADAM_DEFAULTS["period"]
    n_iter_no_change: int = ADAM_DEFAULTS["n_iter_no_change"]
    n_restarts: int = 1
    max_samples: int | None = 10_000


@dataclass
class Candidate:
    """A trained scorer and exit distribution, with what the fit records about it."""

    coefs: list[np.ndarray]
    intercepts: np.ndarray
    #: ``pi``: the mean assignment on the training samples, ``(n_exits,)``.
    fractions: np.ndarray
    record: dict[str, Any]


def training_budgets(
    budget: float, costs: np.ndarray, alpha_cost: float | str, target_cost: float
) -> list[float]:
    """Expected costs the assigner is trained at: ``B`` itself, or with ``alpha_cost="auto"``
    ``B' = B + share (B_r - B)`` for each of :data:`TRAINING_BUDGET_SHARES`.

    ``B_r = (1/N) sum_nk r_nk c_k`` (``target_cost``) is the expected cost of the targets,
    where ``L_CE`` alone has its minimum (with a bias per exit the assigner's mean assignment
    matches the targets' there). Between ``B`` and ``B_r`` every ``B'`` is the optimum of the
    paper's loss for one ``alpha_cost``, from the exact-penalty value (``B' = B``) down to 0
    (``B' = B_r``); the calibration then tilts its distribution onto ``B``. Budgets are kept
    :data:`_EDGE` inside the cost range (a finite tilt); duplicates are dropped.
    """
    span = costs[-1] - costs[0]
    shares = TRAINING_BUDGET_SHARES if alpha_cost == "auto" else (0.0,)
    out: list[float] = []
    for share in shares:
        b = budget + share * (target_cost - budget)
        if span > 0:
            b = min(max(b, costs[0] + _EDGE * span), costs[-1] - _EDGE * span)
        if b not in out:
            out.append(float(b))
    return out


def _penalty(settings: Settings) -> float | None:
    # The paper's h loss divided by alpha_ce: L_CE + (alpha_cost / alpha_ce) L_budget.
    if settings.alpha_cost == "auto" or settings.alpha_ce == 0:
        return None
    return float(settings.alpha_cost) / settings.alpha_ce


def _round_record(scorer_logits, assign_logits, correct, costs, budget, **extra) -> dict:
    losses = eenet_losses(scorer_logits, assign_logits, correct, costs, budget)
    return {**losses, **extra}


def lbfgs_candidates(
    features: list[np.ndarray],
    correct: np.ndarray,
    costs: np.ndarray,
    budget: float,
    settings: Settings,
    rng: np.random.Generator,
    bar: Progress,
) -> list[Candidate]:
    """One candidate per training budget (:func:`training_budgets`), each ``n_rounds``
    alternations of :func:`fit_scorer` and :func:`fit_assigner`, warm-started from the
    previous one (a continuation from the budget outwards)."""
    n_samples, n_exits = correct.shape
    q, r = exit_targets(correct)
    input_dims = [f.shape[1] + k for k, f in enumerate(features)]
    coefs = [np.zeros(d) for d in input_dims]
    intercepts = np.zeros(n_exits)
    theta = init_assigner(input_dims, settings.hidden, rng)
    assignment = np.full((n_samples, n_exits), 1.0 / n_exits)  # the first w: uniform
    span = costs[-1] - costs[0]
    candidates = []
    target_cost = float((r @ costs).mean())
    for train_budget in training_budgets(budget, costs, settings.alpha_cost, target_cost):
        rounds = []
        for _ in range(settings.n_rounds):
            coefs, intercepts, scores, scorer_iterations = fit_scorer(
                features,
                q,
                bce_weights(assignment),
                coefs,
                intercepts,
                settings.l2,
                settings.max_iter,
            )
            inputs = [scorer_inputs(features[k], scores[:, :k]) for k in range(n_exits)]
            fit = fit_assigner(
                theta,
                inputs,
                r,
                costs,
                train_budget,
                settings.l2,
                settings.hidden,
                settings.max_iter,
                settings.alpha_ce,
                _penalty(settings),
            )
            theta, assignment = fit.theta, fit.assignment
            scorer_logits = utility_scores(features, coefs, intercepts)[0]
            rounds.append(
                _round_record(
                    scorer_logits,
                    fit.logits,
                    correct,
                    costs,
                    budget,
                    scorer_iterations=scorer_iterations,
                    assigner_iterations=fit.iterations,
                )
            )
            bar.update(postfix=f"B'={train_budget:.4g} L_CE={rounds[-1]['L_CE']:.4g}")
        if fit.solution == "penalised":
            alpha_cost = float(settings.alpha_cost)
        else:  # the alpha_cost whose penalised optimum this is (at B' = B: the smallest one)
            alpha_cost = (
                float(settings.alpha_ce * abs(fit.multiplier) * budget / span) if span else 0.0
            )
        record = {
            "training_budget": train_budget,
            "alpha_cost": alpha_cost,
            "solution": fit.solution,
            "rounds": rounds,
        }
        candidates.append(Candidate(coefs, intercepts, assignment.mean(axis=0), record))
    return candidates


def adam_candidate(
    features: list[np.ndarray],
    correct: np.ndarray,
    costs: np.ndarray,
    budget: float,
    settings: Settings,
    rng: np.random.Generator,
    bar: Progress,
) -> Candidate:
    """The authors' recipe (:func:`train_adam`) from a random assigner and a zero scorer."""
    input_dims = [f.shape[1] + k for k, f in enumerate(features)]
    theta = init_assigner(input_dims, settings.hidden, rng)
    fit = train_adam(
        features,
        correct,
        costs,
        budget,
        theta,
        rng,
        hidden=settings.hidden,
        alpha_ce=settings.alpha_ce,
        alpha_cost=float(settings.alpha_cost),
        l2=settings.l2,
        learning_rate=settings.learning_rate,
        batch_size=settings.batch_size,
        max_epochs=settings.max_iter,
        period=settings.period,
        n_iter_no_change=settings.n_iter_no_change,
        on_epoch=lambda epoch, means: bar.update(postfix=f"epoch {epoch + 1} loss={means[3]:.5g}"),
    )
    bar.update(settings.max_iter - len(fit.epochs["total"]))  # epochs skipped by early stopping
    scores = utility_scores(features, fit.coefs, fit.intercepts)[1]
    inputs = [scorer_inputs(features[k], scores[:, :k]) for k in range(len(features))]
    assignment = np.exp(log_softmax(assigner_logits(fit.theta, inputs, settings.hidden), axis=1))
    record = {"epochs": fit.epochs, "best_epoch": fit.best_epoch}
    return Candidate(fit.coefs, fit.intercepts, assignment.mean(axis=0), record)


def lp_candidate(
    features: list[np.ndarray],
    correct: np.ndarray,
    costs: np.ndarray,
    budget: float,
    settings: Settings,
    bar: Progress,
) -> Candidate:
    """``n_rounds`` alternations of :func:`fit_scorer` and the LP (beyond the paper)."""
    n_samples, n_exits = correct.shape
    q, _ = exit_targets(correct)
    coefs = [np.zeros(f.shape[1] + k) for k, f in enumerate(features)]
    intercepts = np.zeros(n_exits)
    assignment = np.full((n_samples, n_exits), 1.0 / n_exits)
    solve = lp_exit_assignment if settings.solver == "exact" else lp_exit_assignment_cvxpy
    rounds = []
    for _ in range(settings.n_rounds):
        coefs, intercepts, scores, iterations = fit_scorer(
            features, q, bce_weights(assignment), coefs, intercepts, settings.l2, settings.max_iter
        )
        assignment, value = solve(scores, costs, budget)
        rounds.append({"lp_value": value / n_samples, "scorer_iterations": iterations})
        bar.update(postfix=f"LP value {value / n_samples:.4g}")
    return Candidate(coefs, intercepts, assignment.mean(axis=0), {"rounds": rounds})


@dataclass
class Selected:
    """The candidate kept, calibrated to the budget on every fitting sample."""

    candidate: Candidate
    fractions: np.ndarray
    counts: np.ndarray
    tilt: float
    thresholds: np.ndarray


def calibrate(
    candidate: Candidate, data: ExitData, budget: float, scores: np.ndarray | None = None
) -> tuple[Selected, float]:
    """Quantile thresholds for the candidate on all of ``data`` at the budget, and its accuracy
    there (the criterion that picks among candidates and restarts). ``scores``: the
    candidate's scores of ``data``, when already computed (one budget path scores once)."""
    fractions = np.clip(candidate.fractions, 0.0, None)
    fractions = fractions / fractions.sum()
    counts, tilt = budget_counts(fractions, data.costs, budget, data.n_samples)
    if scores is None:
        scores = data_scores(data, candidate.coefs, candidate.intercepts)
    thresholds = thresholds_from_counts(scores, counts)
    exits = engine.first_exit(scores, thresholds)
    accuracy = float(engine.at_exit(data.correct, exits).mean())
    return Selected(candidate, fractions, counts, tilt, thresholds), accuracy


def _n_steps(settings: Settings, n_budgets: int) -> int:
    if settings.distribution == "lp":
        return settings.n_rounds + 1
    if settings.optimizer == "adam":
        return settings.n_restarts * settings.max_iter + 1
    return settings.n_restarts * n_budgets * settings.n_rounds + 1


def train(
    data: ExitData, budget: float, settings: Settings, rng: np.random.Generator, verbose: bool
) -> tuple[Selected, dict[str, Any]]:
    """Train on (at most ``max_samples`` of) the fitting samples; calibrate every candidate on
    all of them; keep the most accurate (the first among equals).

    Returns the selected candidate and what ``fit_info_`` records.
    """
    n_samples = data.n_samples
    rows = None
    if settings.max_samples is not None and n_samples > settings.max_samples:
        rows = np.sort(rng.choice(n_samples, settings.max_samples, replace=False))
    features = base_features(data, rows)
    correct = data.correct if rows is None else data.correct[rows]
    costs = data.costs
    target_cost = float((exit_targets(correct)[1] @ costs).mean())
    n_budgets = len(training_budgets(budget, costs, settings.alpha_cost, target_cost))
    restarts = [rng] if settings.n_restarts == 1 else rng.spawn(settings.n_restarts)
    best, best_accuracy, history = None, -1.0, []
    with Progress(_n_steps(settings, n_budgets), f"eenet (B={budget:g})", verbose) as bar:
        for restart, restart_rng in enumerate(restarts):
            args = (features, correct, costs, budget, settings)
            if settings.distribution == "lp":
                candidates = [lp_candidate(*args, bar)]
            elif settings.optimizer == "adam":
                candidates = [adam_candidate(*args, restart_rng, bar)]
            else:
                candidates = lbfgs_candidates(*args, restart_rng, bar)
            for candidate in candidates:
                selected, accuracy = calibrate(candidate, data, budget)
                history.append({"restart": restart, **candidate.record, "fit_accuracy": accuracy})
                if accuracy > best_accuracy:
                    best, best_accuracy, chosen = selected, accuracy, len(history) - 1
        bar.update(postfix="thresholds")
    fitted: dict[str, Any] = {
        "distribution": settings.distribution,
        "fractions": best.fractions.tolist(),
        "calibrated_fractions": (best.counts / n_samples).tolist(),
        "tilt": best.tilt,
        "history": history,
        "selected": chosen,
        "n_train_samples": n_samples if rows is None else int(rows.size),
    }
    if settings.distribution == "lp":
        fitted["solver"] = settings.solver
    else:
        fitted["optimizer"] = settings.optimizer
        fitted["alpha_cost"] = history[chosen].get("alpha_cost", settings.alpha_cost)
        if "training_budget" in history[chosen]:
            fitted["training_budget"] = history[chosen]["training_budget"]
    return best, fitted


# -- fitting ----------------------------------------------------------------------------------
def check_settings(**options: Any) -> Settings:
    """:class:`Settings` from options the method spec has validated one by one: the rules
    between them (options the chosen optimiser or distribution would ignore are an error, not a
    quiet no-op) and the optimiser's defaults where an option is None
    (:data:`OPTIMIZER_DEFAULTS`, :data:`ADAM_DEFAULTS`; ``max_samples="auto"``)."""
    distribution, optimizer = options["distribution"], options["optimizer"] or "lbfgs"
    solver = options["solver"]
    if solver is not None and distribution != "lp":
        raise ValueError(
            "solver applies to distribution='lp' only; remove it or pass distribution='lp'."
        )
    if distribution == "lp":
        for name in ("optimizer", "n_restarts", "hidden", "alpha_ce", "alpha_cost"):
            if options[name] is not None:
                raise ValueError(
                    f"{name} applies to distribution='learned' (the LP has no assigner to "
                    f"train); remove {name}= or pass distribution='learned'."
                )
    if optimizer == "adam" and options["n_rounds"] is not None:
        raise ValueError(
            "n_rounds counts L-BFGS alternations; optimizer='adam' alternates every period= "
            "epochs: remove n_rounds= or use optimizer='lbfgs'."
        )
    adam_only = [name for name in ADAM_DEFAULTS if options[name] is not None]
    if optimizer != "adam" and adam_only:
        raise ValueError(
            f"{', '.join(adam_only)} applies to optimizer='adam' only; remove it or pass "
            f"optimizer='adam'."
        )
    if optimizer == "adam" and options["alpha_cost"] == "auto":
        raise ValueError(
            "alpha_cost='auto' trains L-BFGS at several budgets; with optimizer='adam' pass a "
            "number (the authors' 1e-2 by default)."
        )
    defaults = {**OPTIMIZER_DEFAULTS[optimizer], **ADAM_DEFAULTS, **_MODEL_DEFAULTS}
    # max_samples: "auto" is the optimiser's default, None every sample (not a default).
    auto_samples = defaults.pop("max_samples")
    if options["max_samples"] == "auto":
        options = {**options, "max_samples": auto_samples}
    filled = {
        name: defaults[name] if options[name] is None and name in defaults else options[name]
        for name in options
    }
    return Settings(**{**filled, "optimizer": optimizer, "solver": solver or "exact"})


#: The training options of the spec, in :class:`Settings`.
TRAINING_OPTIONS = tuple(f.name for f in dataclasses.fields(Settings))


def solve_budget(
    data: ExitData, method: str, settings: dict, budget: float
) -> tuple[EENetPolicy, dict]:
    """Train the scorer and the exit distribution for ``budget`` on the fitting data, then
    the quantile thresholds of the selected candidate (see the module docstring)."""
    selected, fitted = _train(data, settings, budget)
    return _policy(method, data, selected), fitted


def budget_path(
    data: ExitData, method: str, settings: dict, budgets: np.ndarray, budget: float
) -> list[tuple[EENetPolicy, dict]]:
    """A certified budget's path: one training at ``budget``, its scorer and exit
    distribution calibrated to each of ``budgets`` (quantile thresholds for each), so that the
    path costs one fit rather than one per budget."""
    selected, fitted = _train(data, settings, budget)
    candidate = selected.candidate
    scores = data_scores(data, candidate.coefs, candidate.intercepts)  # once for the path
    path = []
    for b in budgets:
        calibrated, _ = calibrate(candidate, data, float(b), scores)
        info = {
            **fitted,
            "tilt": calibrated.tilt,  # this budget's, not the training budget's
            "calibrated_fractions": (calibrated.counts / data.n_samples).tolist(),
        }
        path.append((_policy(method, data, calibrated), info))
    return path


def _train(data: ExitData, settings: dict, budget: float) -> tuple[Selected, dict]:
    training = check_settings(**{name: settings[name] for name in TRAINING_OPTIONS})
    rng = v.check_random_state(settings["random_state"])
    # One BLAS thread: the products are thin (n x d by d x hidden), so threads buy little and
    # cost much on a busy machine, and the result no longer depends on the core count.
    with threadpool_limits(limits=1, user_api="blas"):
        selected, fitted = train(data, budget, training, rng, settings["verbose"])
    if isinstance(settings["random_state"], (int, np.integer)):  # how to fit it again
        fitted["random_state"] = int(settings["random_state"])
    return selected, fitted


def _policy(method: str, data: ExitData, selected: Selected) -> EENetPolicy:
    candidate = selected.candidate
    return EENetPolicy(
        method,
        selected.thresholds,
        data.costs,
        data.n_classes,
        coefs=candidate.coefs,
        intercepts=candidate.intercepts,
    )


_POSITIVE_INT = v.Interval("int", 1, None)
_NONNEGATIVE = v.Interval("real", 0.0, None)

register(
    MethodSpec(
        name="eenet",
        summary="learned utility scores, budgeted exit distribution, quantile thresholds "
        "(budget only)",
        # None: the optimiser's default (OPTIMIZER_DEFAULTS, ADAM_DEFAULTS).
        options={
            "distribution": (v.Choice(*DISTRIBUTIONS), "learned"),
            "solver": (v.Choice(*SOLVERS), None),
            "optimizer": (v.Choice(*OPTIMIZERS), None),
            "hidden": (_POSITIVE_INT, None),
            "max_iter": (_POSITIVE_INT, None),
            "n_rounds": (_POSITIVE_INT, None),
            "alpha_ce": (_NONNEGATIVE, None),
            "alpha_cost": (v.AnyOf(_NONNEGATIVE, v.Choice("auto")), None),
            "l2": (_NONNEGATIVE, None),
            "learning_rate": (v.Interval("real", 0.0, None, closed="neither"), None),
            "batch_size": (_POSITIVE_INT, None),
            "period": (_POSITIVE_INT, None),
            "n_iter_no_change": (_POSITIVE_INT, None),
            "n_restarts": (_POSITIVE_INT, None),
            "max_samples": (v.AnyOf(_POSITIVE_INT, v.Choice("auto"), v.IsNone()), "auto"),
        },
        targets=("budget",),
        default_target=None,
        solve_budget=solve_budget,
        budget_path=budget_path,
        needs_labels=lambda settings: True,
        uses_random_state=True,
        long_running=True,
        requires=lambda settings: ("probs",),
        path_uses_data=lambda settings: True,  # a learned scorer, quantile thresholds
    )
)
