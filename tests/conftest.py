import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
# A long bug hunt before a release: HYPOTHESIS_PROFILE=thorough python -m pytest -q
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def make_multi_exit(
    n: int = 400, n_exits: int = 4, n_classes: int = 5, seed: int = 0, noise: float = 1.0
):
    """Logits of a synthetic multi-exit model whose exits sharpen with depth.

    Each sample has a true class; exit k's logits are ``strength_k * onehot + noise``, so later
    exits are more often right, as in a real network.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    difficulty = rng.uniform(0.2, 2.0, size=n)
    strength = np.linspace(0.5, 3.0, n_exits)
    logits = rng.normal(scale=noise, size=(n, n_exits, n_classes))
    logits[np.arange(n), :, labels] += strength[None, :] / difficulty[:, None] * 1.5
    return logits, labels


@pytest.fixture
def multi_exit():
    return make_multi_exit()


def budget_at(costs, share):
    """The budget ``share`` of the way from the first exit's cost to the last's, clipped to
    ``costs[-1]`` (``costs[0] + 1.0 * (costs[-1] - costs[0])`` can round one ulp above it)."""
    return float(min(costs[-1], costs[0] + share * (costs[-1] - costs[0])))


def tied_scores(values, dtype=np.float64, max_rows=40):
    """A hypothesis strategy: score arrays ``(1..max_rows, 2..5)`` drawn from a few values,
    so that samples and exits tie."""
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    return st.integers(2, 5).flatmap(
        lambda k: arrays(
            dtype, st.tuples(st.integers(1, max_rows), st.just(k)), elements=st.sampled_from(values)
        )
    )
