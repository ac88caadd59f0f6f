"""Per-sample reference implementations written straight from the spec.

These loops are slow on purpose: they are the independent oracle the vectorised code must
match. Each function handles one sample at a time and uses plain Python where it can.
"""

from __future__ import annotations

import math

import numpy as np

# --- Core ---


def ref_softmax(row: np.ndarray) -> list[float]:
    top = max(row)
    exps = [math.exp(x - top) for x in row]
    total = sum(exps)
    return [e / total for e in exps]


def ref_scores(probs_nk: np.ndarray, name: str, predictions_n: list[int], k: int) -> float:
    """Score of one sample at exit k (spec section 2); ``predictions_n`` are its argmaxes."""
    p = [] if probs_nk is None else [float(x) for x in probs_nk]
    if name == "maxprob":
        return max(p)
    if name == "entropy":
        s = sum(x * math.log(x) for x in p if x > 0)
        return 1 + s / math.log(len(p))
    if name == "margin":
        top = sorted(p, reverse=True)
        return top[0] - top[1]
    if name == "vote":
        so_far = predictions_n[: k + 1]
        return max(so_far.count(c) for c in set(so_far)) / (k + 1)
    if name == "patience":
        count = 0
        for j in range(k, 0, -1):
            if predictions_n[j - 1] == predictions_n[k]:
                count += 1
            else:
                break
        return count
    raise ValueError(name)


def ref_exit(scores_n: list[float], thresholds: list[float]) -> int:
    """First exit whose score reaches its threshold; the last always fires."""
    for k in range(len(scores_n) - 1):
        if scores_n[k] >= thresholds[k]:
            return k
    return len(scores_n) - 1


def ref_evaluate(probs: np.ndarray, labels, costs, scores: np.ndarray, thresholds) -> dict:
    """Accuracy, mean cost and exit fractions by a loop over samples."""
    n, n_exits, _ = probs.shape
    correct, total_cost = 0, 0.0
    counts = [0] * n_exits
    for i in range(n):
        k = ref_exit(list(scores[i]), list(thresholds))
        counts[k] += 1
        total_cost += costs[k]
        correct += int(int(np.argmax(probs[i, k])) == int(labels[i]))
    return {
        "accuracy": correct / n,
        "mean_cost": total_cost / n,
        "exit_fractions": [c / n for c in counts],
    }


def ref_quantile_thresholds(scores: np.ndarray, fractions) -> list[float]:
    """Spec section 6, one sample at a time."""
    n, n_exits = scores.shape
    counts = [math.floor(f * n + 1e-9) for f in fractions[:-1]]
    assigned = [False] * n
    thresholds = []
    for k in range(n_exits - 1):
        remaining = [scores[i, k] for i in range(n) if not assigned[i]]
        if counts[k] == 0 or not remaining:
            thresholds.append(math.inf)
            continue
        ordered = sorted(remaining, reverse=True)
        tau = ordered[min(counts[k], len(ordered)) - 1]
        thresholds.append(float(tau))
        for i in range(n):
            if not assigned[i] and scores[i, k] >= tau:
                assigned[i] = True
    thresholds.append(-math.inf)
    return thresholds


def ref_geometric_fractions(q: float, n_exits: int) -> list[float]:
    weights = [q**k for k in range(n_exits)]
    return [w / sum(weights) for w in weights]


# --- BEEM ---


def ref_beem_scores(predictions_n, confidence_n, weights, reset: str = "paper") -> list[float]:
    """Spec section 4 for one sample: S_0 = w_0 C_0; add w_k C_k while the argmax is unchanged,
    else restart at w_k C_k ("paper") or at 0 without adding ("zero", the released code)."""
    scores = []
    for k in range(len(predictions_n)):
        vote = float(weights[k]) * float(confidence_n[k])
        if k == 0:
            scores.append(vote if reset == "paper" else 0.0)
        elif int(predictions_n[k]) == int(predictions_n[k - 1]):
            scores.append(scores[-1] + vote)
        else:
            scores.append(vote if reset == "paper" else 0.0)
    return scores


def ref_exit_error_thresholds(scores, correct, level, min_samples=1, mode="per-exit"):
    """The error-rate rule by brute force: every candidate alpha is tried.

    Per exit: among the samples still in, try each of their score values from the smallest up;
    the first whose exiting samples number at least ``min_samples`` and err at a rate
    ``<= level`` is alpha_k (+inf if none). Global: the same over one shared alpha, counting the
    samples that leave at any early exit (each at the first exit whose score reaches alpha).
    Either way alpha is reported as the score of the weakest sample that leaves (any value down
    to the next lower candidate gives the same exits).
    """
    n, n_exits = len(scores), len(scores[0])
    if mode == "global":
        values = sorted({float(scores[i][k]) for i in range(n) for k in range(n_exits - 1)})
        for alpha in values:
            thresholds = [alpha] * (n_exits - 1) + [-math.inf]
            exits = [ref_exit(list(scores[i]), thresholds) for i in range(n)]
            early = [i for i in range(n) if exits[i] < n_exits - 1]
            wrong = sum(1 for i in early if not correct[i][exits[i]])
            if len(early) >= min_samples and wrong / len(early) <= level:
                # Reported as the weakest leaver's score: the same exits, as a data value.
                weakest = min(float(scores[i][exits[i]]) for i in early)
                return [weakest] * (n_exits - 1) + [-math.inf]
        return [math.inf] * (n_exits - 1) + [-math.inf]
    remaining = list(range(n))
    thresholds = []
    for k in range(n_exits - 1):
        chosen = math.inf
        for alpha in sorted({float(scores[i][k]) for i in remaining}):
            leaving = [i for i in remaining if scores[i][k] >= alpha]
            wrong = sum(1 for i in leaving if not correct[i][k])
            if len(leaving) >= min_samples and wrong / len(leaving) <= level:
                chosen = alpha
                break
        thresholds.append(chosen)
        remaining = [i for i in remaining if not scores[i][k] >= chosen]
    return thresholds + [-math.inf]


def ref_all_levels(n: int) -> list[float]:
    """Every error rate e / m with 0 <= e <= m <= n: the levels at which the rule can change."""
    from fractions import Fraction

    return [
        float(f) for f in sorted({Fraction(e, m) for m in range(1, n + 1) for e in range(m + 1)})
    ]


# --- EENet ---


def ref_eenet_targets(correct_n: list[bool]) -> tuple[list[float], list[float]]:
    """q and r of one sample (spec section 5)."""
    n_exits = len(correct_n)
    q = [1.0 if c else 0.0 for c in correct_n]
    n_correct = sum(q)
    if n_correct == 0:
        return q, [1.0 / n_exits] * n_exits
    return q, [qk / n_correct for qk in q]


def _ref_softmax_row(row) -> list[float]:
    return ref_softmax([float(x) for x in row])


def ref_eenet_losses(scorer_logits, assignment_logits, correct, costs, budget) -> dict:
    """L_g, L_CE and L_budget by loops, straight from the formulas of spec section 5."""
    n, n_exits = len(correct), len(correct[0])
    q, r, s, r_hat = [], [], [], []
    for i in range(n):
        q_i, r_i = ref_eenet_targets(list(correct[i]))
        q.append(q_i)
        r.append(r_i)
        s.append([1.0 / (1.0 + math.exp(-float(a))) for a in scorer_logits[i]])
        r_hat.append(_ref_softmax_row(assignment_logits[i]))
    ce = 0.0
    for i in range(n):
        for k in range(n_exits):
            if r[i][k] > 0:
                ce -= r[i][k] * math.log(r_hat[i][k])
    ce /= n * n_exits
    expected_cost = sum(r_hat[i][k] * costs[k] for i in range(n) for k in range(n_exits)) / n
    l_budget = abs(budget - expected_cost) / budget
    l_g = 0.0
    for k in range(n_exits):
        remaining = [1.0 - sum(r_hat[i][j] for j in range(k)) for i in range(n)]
        total = sum(remaining)
        for i in range(n):
            w = remaining[i] / total
            bce = -(q[i][k] * math.log(s[i][k]) + (1 - q[i][k]) * math.log(1 - s[i][k]))
            l_g += w * bce
    l_g /= n_exits
    return {"L_g": l_g, "L_CE": ce, "L_budget": l_budget}


def ref_utility_scores(probs: np.ndarray, coefs, intercepts) -> list[list[float]]:
    """s_k = sigmoid(w_k . z_k + b_k), z_k = [p_k, max p_k, entropy_k, vote_k, s_0..s_{k-1}],
    one sample at a time."""
    n, n_exits, _ = probs.shape
    out = []
    for i in range(n):
        predictions = [int(np.argmax(probs[i, k])) for k in range(n_exits)]
        s_i: list[float] = []
        for k in range(n_exits):
            z = [float(x) for x in probs[i, k]]
            z += [
                ref_scores(probs[i, k], name, predictions, k)
                for name in ("maxprob", "entropy", "vote")
            ]
            z += s_i
            a = sum(w * x for w, x in zip(coefs[k], z, strict=True)) + float(intercepts[k])
            s_i.append(1.0 / (1.0 + math.exp(-a)))
        out.append(s_i)
    return out


def ref_quantile_assignment(scores: np.ndarray, counts: list[int]) -> list[int]:
    """Section 6's assignment itself, one sample at a time: exit k takes, among the samples not
    yet assigned, those whose score is at least the counts[k]-th largest (all of them if fewer
    remain); the last exit takes the rest."""
    n, n_exits = scores.shape
    exits = [n_exits - 1] * n
    assigned = [False] * n
    for k in range(n_exits - 1):
        remaining = [float(scores[i, k]) for i in range(n) if not assigned[i]]
        if counts[k] == 0 or not remaining:
            continue
        tau = sorted(remaining, reverse=True)[min(counts[k], len(remaining)) - 1]
        for i in range(n):
            if not assigned[i] and scores[i, k] >= tau:
                assigned[i] = True
                exits[i] = k
    return exits


# --- Risk (certified targets) ---


def ref_wsr_p_value(losses, epsilon: float, delta: float, max_bet: float = 1.0) -> float:
    """Waudby-Smith-Ramdas betting p-value of H: mean > epsilon for losses in [0, 1], one sample
    at a time in the given order: 1 / (the largest capital reached), at most 1."""
    x = [float(value) for value in losses]
    n = len(x)
    capital, best = 1.0, 1.0
    total, squares = 0.0, 0.0
    variance_before = 0.25  # the prior guess for the variance before any sample
    for t, value in enumerate(x, start=1):
        bet = math.sqrt(2 * math.log(1 / delta) / (n * variance_before))
        if epsilon < 1:
            bet = min(bet, max_bet / (1 - epsilon))
        capital *= max(0.0, 1 + bet * (epsilon - value))  # a factor is never below 0
        best = max(best, capital)
        total += value
        mean_t = (0.5 + total) / (t + 1)
        squares += (value - mean_t) ** 2
        variance_before = (0.25 + squares) / (t + 1)
    return min(1.0, 1.0 / best)


def ref_fixed_sequence(p_values, delta: float) -> int:
    """Test in order while p <= delta; the last rejected index, -1 if the first stands."""
    index = -1
    for j, p in enumerate(p_values):
        if not p <= delta:
            break
        index = j
    return index


def ref_crc_index(losses, epsilon: float, loss_bound: float) -> int:
    """Conformal risk control on the running maximum of each sample's losses along the path."""
    n_settings, n = len(losses), len(losses[0])
    running = [float("-inf")] * n
    index = -1
    for j in range(n_settings):
        running = [max(r, float(losses[j][i])) for i, r in enumerate(running)]
        if (sum(running) + loss_bound) / (n + 1) > epsilon:
            break
        index = j
    return index


# --- Exact sweeps: the implementations the fast ones replaced, kept as oracles ---


def ref_threshold_sweep(scores: np.ndarray, correct: np.ndarray, costs: np.ndarray):
    """``eeopt.targets.threshold_sweep`` as it was before the packed-key sort (dense (N, K)
    temporaries, one argsort of the records): ``(parameters, mean_costs, n_correct)``."""
    n_samples, n_exits = scores.shape
    base_correct = int(np.count_nonzero(correct[:, -1]))
    if n_exits == 1:
        return np.array([np.inf]), np.array([costs[0]]), np.array([base_correct])
    early = scores[:, :-1]
    running_max = np.maximum.accumulate(early, axis=1)
    is_record = np.empty(early.shape, dtype=bool)
    is_record[:, 0] = True
    np.greater(early[:, 1:], running_max[:, :-1], out=is_record[:, 1:])
    next_record = np.empty(early.shape, dtype=np.int64)
    following = np.full(n_samples, n_exits - 1, dtype=np.int64)
    for k in range(n_exits - 2, -1, -1):
        next_record[:, k] = following
        following = np.where(is_record[:, k], k, following)
    exit_costs = costs[:-1].astype(np.float64)
    delta_cost = (exit_costs[None, :] - costs[next_record])[is_record]
    delta_correct = (
        correct[:, :-1].astype(np.int8) - np.take_along_axis(correct, next_record, axis=1)
    )[is_record]
    values = early[is_record]
    order = np.argsort(values)[::-1]
    values, delta_cost, delta_correct = values[order], delta_cost[order], delta_correct[order]
    group_end = np.flatnonzero(np.r_[values[1:] != values[:-1], True])
    total_cost = n_samples * costs[-1] + np.cumsum(delta_cost)[group_end]
    n_correct = base_correct + np.cumsum(delta_correct)[group_end]
    return (
        np.r_[np.inf, values[group_end].astype(np.float64)],
        np.r_[costs[-1], total_cost / n_samples],
        np.r_[base_correct, n_correct],
    )


def ref_solve_q(exit_scores: np.ndarray, costs: np.ndarray, budget: float) -> float:
    """``eeopt.methods.msdnet.solve_q`` as it was before it bisected on counts: bisection on
    log q in [-60, 60] with the realised mean cost (thresholds + exit rule) at every step."""
    from eeopt import engine
    from eeopt.methods.msdnet import geometric_fractions

    def realised(q: float) -> float:
        fractions = geometric_fractions(q, exit_scores.shape[1])
        thresholds = np.array(ref_quantile_thresholds(exit_scores, fractions))
        return engine.mean_cost(engine.first_exit(exit_scores, thresholds), costs)

    if realised(np.inf) <= budget:
        return np.inf
    lo, hi = -60.0, 60.0
    if realised(np.exp(lo)) > budget:
        return 0.0
    while hi - lo > 1e-12:
        mid = 0.5 * (lo + hi)
        if realised(np.exp(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return float(np.exp(lo))


def ref_per_exit_level_sweep(scores, correct, costs, min_samples=1, max_level=1.0):
    """BEEM's per-exit level sweep as it was before the event simulation: every step
    recomputes the rule from the first exit whose choice changes, with an ``O(N)`` pass per
    exit recomputed. Returns ``(levels, thresholds, counts, n_correct)``.

    One fix to that code: the early stop ("the samples passed on are unchanged and the next
    exit's choice is not due") now requires that no later exit is due either. Without it, when
    two exits' choices changed at the same level, the first step recorded an intermediate
    state that is not the rule's policy at any level, and the level appeared twice.
    """
    from eeopt.methods.beem import _choose, _group_ends

    n_samples, n_exits = scores.shape
    columns = np.ascontiguousarray(scores.T)

    class SortedExit:
        def __init__(self, exit_scores, wrong):
            self.order = np.argsort(exit_scores)[::-1]
            ordered = exit_scores[self.order]
            ends = _group_ends(ordered)
            self.values = ordered[ends]
            self.group = np.repeat(np.arange(ends.size), np.diff(ends, prepend=-1))
            self.wrong = wrong[self.order]

        def candidates(self, remaining):
            present = np.flatnonzero(remaining[self.order])
            if present.size == 0:
                empty = np.empty(0, dtype=np.int64)
                return self.values[:0], empty, empty
            group = self.group[present]
            last = _group_ends(group)
            n_wrong = np.cumsum(self.wrong[present])[last]
            return self.values[group[last]], last + 1, n_wrong

    sorted_exits = [SortedExit(columns[k], ~correct[:, k]) for k in range(n_exits - 1)]
    remaining = [np.ones(n_samples, dtype=bool)] + [None] * (n_exits - 1)
    alpha = np.full(n_exits, -np.inf)
    exit_count = np.zeros(n_exits, dtype=np.int64)
    exit_correct = np.zeros(n_exits, dtype=np.int64)
    next_level = np.full(n_exits - 1, np.inf)

    def recompute(first, level):
        for k in range(first, n_exits - 1):
            values, n_exit, n_wrong = sorted_exits[k].candidates(remaining[k])
            chosen, next_level[k] = _choose(values, n_exit, n_wrong, level, min_samples)
            if chosen < 0:
                alpha[k], exit_count[k], exit_correct[k] = np.inf, 0, 0
                passed = remaining[k]
            else:
                alpha[k] = values[chosen]
                exit_count[k] = n_exit[chosen]
                exit_correct[k] = n_exit[chosen] - n_wrong[chosen]
                passed = remaining[k] & (columns[k] < alpha[k])
            settled = (
                remaining[k + 1] is not None
                and (k + 1 == n_exits - 1 or next_level[k + 1 :].min() > level)  # the fix
                and np.array_equal(passed, remaining[k + 1])
            )
            remaining[k + 1] = passed
            if settled:
                return
        last = remaining[n_exits - 1]
        exit_count[-1] = np.count_nonzero(last)
        exit_correct[-1] = np.count_nonzero(last & correct[:, -1])

    levels, all_thresholds, all_counts, n_correct = [], [], [], []
    level, first = 0.0, 0
    while True:
        recompute(first, level)
        levels.append(level)
        all_thresholds.append(alpha.copy())
        all_counts.append(exit_count.copy())
        n_correct.append(int(exit_correct.sum()))
        level = float(next_level.min())
        if not level <= max_level:
            break
        first = int(np.flatnonzero(next_level == level)[0])
    return (
        np.array(levels),
        np.array(all_thresholds),
        np.array(all_counts, dtype=np.int64),
        np.array(n_correct, dtype=np.int64),
    )
