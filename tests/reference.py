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
