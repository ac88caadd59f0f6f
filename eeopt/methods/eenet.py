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

  minimised alternately: the g step minimises ``L_g`` with ``w`` held fixed (exit by exit, each a
  weighted logistic regression whose earlier scores are inputs), the h step minimises
  ``alpha_ce L_CE + alpha_cost L_budget`` with the scores held fixed. ``w`` and the earlier
  scores are constants of the step that uses them, as in the published code (stop-gradient).
  Both steps add ``(l2 / 2) ||theta||^2`` on their parameters and run full-batch L-BFGS with
  analytic gradients.
- Thresholds: quantile thresholds (section 6) on ``s`` with ``pi``, after the distribution is
  calibrated to the budget (:func:`budget_counts`).

``distribution="lp"`` replaces ``h`` by the linear programme
``max sum_nk x_nk s_nk  s.t.  sum_k x_nk = 1, x >= 0, (1/N) sum_nk x_nk c_k <= B``, solved
exactly by :func:`lp_exit_assignment` (Lagrangian breakpoints) or by cvxpy
(:func:`lp_exit_assignment_cvxpy`); ``x`` then plays the role of ``r̂``.
"""

from __future__ import annotations

import numbers
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

#: Confidence features after the class probabilities: max probability, entropy, vote.
N_CONFIDENCE_FEATURES = 3
DISTRIBUTIONS = ("learned", "lp")
SOLVERS = ("exact", "cvxpy")
#: Share of uniform mass mixed into the distribution before tilting, so that tilting can reach
#: exits the distribution leaves empty; below 1/N per exit it changes no count by itself.
_FLOOR = 1e-12
#: L-BFGS stopping rules besides max_iter: the losses are O(1), so these are near convergence.
_LBFGS_TOLERANCES = {"gtol": 1e-7, "ftol": 1e-10}
#: Bisection range of the tilt, in units of the smallest positive cost step.
_TILT_RANGE = 200.0


# -- features, targets, scores ----------------------------------------------------------------
def base_features(data: ExitData) -> list[np.ndarray]:
    """``[p_k, max p_k, entropy confidence, vote confidence]`` of every exit.

    Returns
    -------
    list of ndarray of shape (n_samples, n_classes + 3), float64, one per exit
    """
    n_samples, n_exits, n_classes = data.probs.shape
    features = []
    for k in range(n_exits):
        f = np.empty((n_samples, n_classes + N_CONFIDENCE_FEATURES))
        f[:, :n_classes] = data.probs[:, k]
        f[:, n_classes] = data.maxprob[:, k]
        f[:, n_classes + 1] = data.entropy[:, k]
        f[:, n_classes + 2] = data.vote[:, k]
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


def assigner_logits(theta: np.ndarray, inputs: list[np.ndarray], hidden: int) -> np.ndarray:
    """``h_k(z_k)`` for every exit, ``(n_samples, n_exits)``."""
    layers = _unpack(theta, _assigner_shapes([z.shape[1] for z in inputs], hidden))
    out = np.empty((inputs[0].shape[0], len(inputs)))
    for k, z in enumerate(inputs):
        w1, b1, w2, b2 = layers[4 * k : 4 * k + 4]
        out[:, k] = np.tanh(z @ w1 + b1) @ w2 + b2
    return out


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

    Parameters
    ----------
    theta : ndarray
        Packed parameters of every exit's MLP (:func:`init_assigner`).
    inputs : list of ndarray, ``inputs[k]`` of shape (n_samples, n_classes + 3 + k)
        ``z_k`` (the scores in them are held fixed).
    target : ndarray of shape (n_samples, n_exits)
        ``r``.
    """
    shapes = _assigner_shapes([z.shape[1] for z in inputs], hidden)
    layers = _unpack(theta, shapes)
    n_samples, n_exits = target.shape
    activations = []
    logits = np.empty((n_samples, n_exits))
    for k, z in enumerate(inputs):
        w1, b1, w2, b2 = layers[4 * k : 4 * k + 4]
        act = np.tanh(z @ w1 + b1)
        activations.append(act)
        logits[:, k] = act @ w2 + b2
    log_assignment = log_softmax(logits, axis=1)
    assignment = np.exp(log_assignment)
    ce = -float((target * log_assignment).sum()) / (n_samples * n_exits)
    per_sample_cost = assignment @ costs
    mean_cost = float(per_sample_cost.mean())
    gap = mean_cost - budget
    loss = alpha_ce * ce + alpha_cost * abs(gap) / budget + 0.5 * l2 * float(theta @ theta)
    # d/d logits of -sum_k r_k log softmax_k = r̂ sum_k r_k - r.
    d_logits = alpha_ce * (assignment * target.sum(axis=1, keepdims=True) - target)
    d_logits /= n_samples * n_exits
    # d mean_cost / d logits_nk = r̂_nk (c_k - sum_j r̂_nj c_j) / N; |.|' = sign (0 at the kink).
    d_logits += (alpha_cost * np.sign(gap) / (budget * n_samples)) * (
        assignment * (costs[None, :] - per_sample_cost[:, None])
    )
    grads = []
    for k, z in enumerate(inputs):
        w1, _, w2, _ = layers[4 * k : 4 * k + 4]
        act = activations[k]
        g = d_logits[:, k]
        d_pre = np.outer(g, w2) * (1.0 - act * act)
        grads += [(z.T @ d_pre).ravel(), d_pre.sum(axis=0), act.T @ g, np.array([g.sum()])]
    grad = np.concatenate(grads) + l2 * theta
    return loss, grad


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
        return utility_scores(base_features(data), self.coefs_, self.intercepts_)[1]

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


# -- fitting ----------------------------------------------------------------------------------
def _check_nonnegative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number >= 0, got {value!r}.")
    value = float(value)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return value


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


_OPTIONS = {
    "budget",
    "target",
    "tolerance",
    "distribution",
    "solver",
    "random_state",
    "verbose",
    "hidden",
    "max_iter",
    "n_rounds",
    "alpha_ce",
    "alpha_cost",
    "l2",
}


def fit_eenet(
    data: ExitData,
    method: str,
    budget: float | None = None,
    target: str | None = None,
    tolerance: float | None = None,
    distribution: str = "learned",
    solver: str | None = None,
    random_state: Any = None,
    verbose: bool = True,
    hidden: int = 16,
    max_iter: int = 100,
    n_rounds: int = 2,
    alpha_ce: float = 1e-3,
    alpha_cost: float = 1e-2,
    l2: float = 1e-4,
) -> tuple[EENetPolicy, dict]:
    """Fit EENet to a budget (see the module docstring and ``docs/eenet.md``).

    Parameters
    ----------
    budget : float
        Mean cost per sample on the fitting data, in ``[costs[0], costs[-1]]``. Required: EENet
        is fitted to a budget only.
    distribution : {"learned", "lp"}, default="learned"
        The exit distribution: the assigner ``h`` (the paper), or the LP (beyond the paper).
    solver : {"exact", "cvxpy"}, optional
        How the LP is solved (``distribution="lp"`` only); default ``"exact"``.
    random_state : None, int or numpy Generator
        Seeds the assigner's initial weights; the same seed gives the same policy.
    verbose : bool, default=True
        Progress bar on stderr.
    hidden : int, default=16
        Hidden width of each exit's assigner MLP.
    max_iter : int, default=100
        L-BFGS iterations per step (per exit in the g step).
    n_rounds : int, default=2
        Alternations of the g step and the h (or LP) step.
    alpha_ce, alpha_cost : float, default=1e-3, 1e-2
        Weights of ``L_CE`` and ``L_budget`` (the authors' defaults).
    l2 : float, default=1e-4
        L2 penalty ``(l2/2) ||theta||^2`` on every parameter (weights and biases).
    """
    if target is not None or tolerance is not None:
        raise ValueError(
            "method 'eenet' is fitted to a budget only: pass budget=B (a mean cost per sample), "
            "not target= or tolerance=."
        )
    if budget is None:
        raise ValueError("method 'eenet' needs budget= (a mean cost per sample).")
    budget = v.check_budget(budget, data.costs)
    labels_needed = "fitting 'eenet' (its scorer learns which exits are correct)"
    data.require_labels(labels_needed)
    v.check_choice(distribution, "distribution", DISTRIBUTIONS)
    if solver is not None:
        v.check_choice(solver, "solver", SOLVERS)
        if distribution != "lp":
            raise ValueError(
                "solver applies to distribution='lp' only; remove it or pass distribution='lp'."
            )
    solver = solver or "exact"
    rng = v.check_random_state(random_state)
    verbose = _check_bool(verbose, "verbose")
    hidden = v.check_positive_int(hidden, "hidden")
    max_iter = v.check_positive_int(max_iter, "max_iter")
    n_rounds = v.check_positive_int(n_rounds, "n_rounds")
    alpha_ce = _check_nonnegative(alpha_ce, "alpha_ce")
    alpha_cost = _check_nonnegative(alpha_cost, "alpha_cost")
    l2 = _check_nonnegative(l2, "l2")

    costs = data.costs
    n_samples, n_exits = data.n_samples, data.n_exits
    features = base_features(data)
    q, r = exit_targets(data.correct)
    coefs = [np.zeros(f.shape[1] + k) for k, f in enumerate(features)]
    intercepts = np.zeros(n_exits)
    input_dims = [f.shape[1] + k for k, f in enumerate(features)]
    theta = init_assigner(input_dims, hidden, rng)
    # The first g step weights every sample equally (r̂ uniform over exits).
    assignment = np.full((n_samples, n_exits), 1.0 / n_exits)
    h_scale = 1.0 / (alpha_ce + alpha_cost) if alpha_ce + alpha_cost > 0 else 1.0
    history = []

    # One BLAS thread: the products are thin (n x d by d x hidden), so threads buy little and
    # cost much on a busy machine, and the result no longer depends on the core count.
    with (
        threadpool_limits(limits=1, user_api="blas"),
        Progress(2 * n_rounds + 1, f"eenet (B={budget:g})", verbose) as bar,
    ):
        for round_index in range(n_rounds):
            # g step: exit by exit, earlier scores as inputs, w fixed.
            weights = bce_weights(assignment)
            scores = np.empty((n_samples, n_exits))
            scorer_iterations, assigner_iterations = 0, 0
            for k in range(n_exits):
                inputs = scorer_inputs(features[k], scores[:, :k])
                params = np.r_[coefs[k], intercepts[k]]
                res = minimize(
                    scorer_loss,
                    params,
                    args=(inputs, q[:, k], weights[:, k], n_exits, l2),
                    jac=True,
                    method="L-BFGS-B",
                    options={"maxiter": max_iter, **_LBFGS_TOLERANCES},
                )
                scorer_iterations += res.nit
                coefs[k], intercepts[k] = res.x[:-1], res.x[-1]
                scores[:, k] = expit(inputs @ coefs[k] + intercepts[k])
            bar.update(postfix=f"round {round_index + 1}/{n_rounds}: scorer")
            # h step (or the LP), scores fixed.
            if distribution == "learned":
                inputs = [scorer_inputs(features[k], scores[:, :k]) for k in range(n_exits)]
                args = (inputs, r, costs, budget, alpha_ce, alpha_cost, l2, hidden)

                def scaled(t, *a):
                    loss, grad = assignment_loss(t, *a)
                    return loss * h_scale, grad * h_scale

                res = minimize(
                    scaled,
                    theta,
                    args=args,
                    jac=True,
                    method="L-BFGS-B",
                    options={"maxiter": max_iter, **_LBFGS_TOLERANCES},
                )
                assigner_iterations = res.nit
                theta = res.x
                logits = assigner_logits(theta, inputs, hidden)
                assignment = np.exp(log_softmax(logits, axis=1))
                scorer_logits = utility_scores(features, coefs, intercepts)[0]
                losses = eenet_losses(scorer_logits, logits, data.correct, costs, budget)
            else:
                solve = lp_exit_assignment if solver == "exact" else lp_exit_assignment_cvxpy
                assignment, value = solve(scores, costs, budget)
                losses = {"lp_value": value / n_samples}
                assigner_iterations = 0
            history.append(
                {
                    **losses,
                    "scorer_iterations": scorer_iterations,
                    "assigner_iterations": assigner_iterations,
                }
            )
            bar.update(
                postfix=f"round {round_index + 1}/{n_rounds}: "
                + " ".join(f"{k}={x:.4g}" for k, x in losses.items())
            )

        fractions = assignment.mean(axis=0)
        fractions = np.clip(fractions, 0.0, None)
        fractions /= fractions.sum()
        counts, tilt = budget_counts(fractions, costs, budget, n_samples)
        scores = utility_scores(features, coefs, intercepts)[1]
        thresholds = thresholds_from_counts(scores, counts)
        bar.update(postfix="thresholds")

    policy = EENetPolicy(
        method, thresholds, costs, data.n_classes, coefs=coefs, intercepts=intercepts
    )
    fitted = {
        "distribution": distribution,
        "fractions": fractions.tolist(),
        "calibrated_fractions": (counts / n_samples).tolist(),
        "tilt": tilt,
        "history": history,
    }
    if distribution == "lp":
        fitted["solver"] = solver
    if isinstance(random_state, (int, np.integer)):  # how to fit it again
        fitted["random_state"] = int(random_state)
    return policy, fitted


def solve_budget(
    data: ExitData, method: str, settings: dict, budget: float
) -> tuple[EENetPolicy, dict]:
    """Train the scorer and the exit distribution for ``budget`` (:func:`fit_eenet`)."""
    return fit_eenet(data, method, budget=budget, **settings)


register(
    MethodSpec(
        name="eenet",
        summary="learned utility scores, budgeted exit distribution, quantile thresholds "
        "(budget only)",
        options={
            "distribution": (v.Choice(*DISTRIBUTIONS), "learned"),
            "solver": (v.Choice(*SOLVERS), None),
            "hidden": (v.Interval("int", 1, None), 16),
            "max_iter": (v.Interval("int", 1, None), 100),
            "n_rounds": (v.Interval("int", 1, None), 2),
            "alpha_ce": (v.Interval("real", 0.0, None), 1e-3),
            "alpha_cost": (v.Interval("real", 0.0, None), 1e-2),
            "l2": (v.Interval("real", 0.0, None), 1e-4),
        },
        targets=("budget",),
        default_target=None,
        solve_budget=solve_budget,
        needs_labels=lambda settings: True,
        uses_random_state=True,
        long_running=True,
        requires=lambda settings: ("probs",),
        path_uses_data=lambda settings: True,  # a learned scorer, quantile thresholds
    )
)
