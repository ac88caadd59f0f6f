"""A synthetic token-level multi-exit source: score-only arrays at language-model scale.

    python benchmarks/tokens.py --n 10000000 --exits 24 --out /tmp/tokens   # writes .npy files

What it models (one calibration token = one sample; ``K`` exits of a decoder):

- **Difficulty.** Each token has a difficulty ``d ~ N(0, 1)``; the logit of exit k being right
  is ``m_k = b_k - 1.6 d + z_k``, where ``b_k`` rises with depth (the first exit is right on
  about 21% of the tokens, the last on about 65%: a small decoder's next-token accuracy).
- **Exits that change their mind.** ``z_k`` is a per-token AR(1) walk across depth
  (``z_k = 0.85 z_{k-1} + 0.53 e_k``, unit variance): neighbouring exits are strongly but not
  perfectly correlated, so a token can be right at exit k, wrong at k + 1 and right again.
- **Right or wrong.** Exit k is right when ``u_k < sigmoid(m_k)``, where ``u_k`` comes from a
  second AR(1) walk (Gaussian copula, correlation 0.7 between neighbours): given ``m_k`` the
  chance of being right is exactly ``sigmoid(m_k)``, and neighbours err together more often than
  independent exits would.
- **Confidence** (the max probability) is ``sigmoid(m_k + 0.4 n_k)``, ``n_k`` standard normal:
  calibrated up to that noise (over-confident in the tails, as real heads are), clipped to
  ``[1 / vocab, 1]`` and stored as float32.
- **Wrong predictions.** A wrong exit keeps the previous exit's wrong token with probability 0.6
  (a neighbouring exit that is still wrong usually insists on the same token), else it draws a
  token from a Zipf law (exponent 1.1) over the vocabulary (32,000 by default), shifted off the
  label. So wrong predictions of unrelated exits rarely coincide, and disagreements between
  neighbours are frequent where the token is hard. Labels follow the same Zipf law.
- **Costs** are the cumulative FLOPs per token of a 24-layer decoder (d_model 2048, context
  2048, vocabulary 32,000) in which every exit passed on the way evaluates its head:
  ``costs[k] = (k + 1) * (layer + head)`` with ``layer = 24 d^2 + 4 d ctx`` and
  ``head = 2 d V`` multiply-adds counted as 2 FLOPs (about 2.2e8 per exit).

The tokens are generated in chunks of 2^18 with their own seed (``SeedSequence([seed, chunk])``),
so the output for a seed does not depend on how much is generated at once, a shorter set is a
prefix of a longer one, and the peak memory is the output plus a few chunk-sized temporaries.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

#: Tokens generated at once; fixed, so that the output for a seed is the same whatever N.
CHUNK = 1 << 18

_ZIPF_EXPONENT = 1.1


def decoder_costs(
    n_exits: int = 24, d_model: int = 2048, context: int = 2048, vocab: int = 32_000
) -> np.ndarray:
    """Cumulative FLOPs per token at each exit of a decoder whose exits each run a vocabulary
    head: ``(k + 1) * (24 d^2 + 4 d ctx + 2 d V)``, ``(n_exits,)`` float64."""
    layer = 24.0 * d_model**2 + 4.0 * d_model * context
    head = 2.0 * d_model * vocab
    return (np.arange(n_exits) + 1.0) * (layer + head)


def _zipf_tokens(rng: np.random.Generator, size, vocab: int, cdf: np.ndarray) -> np.ndarray:
    return np.searchsorted(cdf, rng.random(size), side="right").astype(np.int32) % vocab


def _chunk(seed: int, index: int, n: int, n_exits: int, vocab: int, cdf: np.ndarray):
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    labels = _zipf_tokens(rng, n, vocab, cdf)
    difficulty = rng.standard_normal(n)
    depth = np.linspace(0.0, 1.0, n_exits)
    base = -2.1 + 3.1 * np.sqrt(depth)  # rises fast at first, then levels off
    predictions = np.empty((n, n_exits), dtype=np.int32)
    confidence = np.empty((n, n_exits), dtype=np.float32)
    walk = rng.standard_normal(n)
    copula = rng.standard_normal(n)
    previous = np.full(n, -1, dtype=np.int64)  # previous exit's wrong token, -1 if it was right
    for k in range(n_exits):
        if k:
            walk = 0.85 * walk + np.sqrt(1 - 0.85**2) * rng.standard_normal(n)
            copula = 0.7 * copula + np.sqrt(1 - 0.7**2) * rng.standard_normal(n)
        margin = base[k] - 1.6 * difficulty + walk
        p_right = 1.0 / (1.0 + np.exp(-margin))
        # u = Phi(copula) < p_right, compared on the normal scale.
        right = copula < _normal_quantile(p_right)
        fresh = (labels + 1 + _zipf_tokens(rng, n, vocab - 1, cdf[: vocab - 1])) % vocab
        insist = (previous >= 0) & (rng.random(n) < 0.6)
        wrong_token = np.where(insist, previous, fresh)
        predictions[:, k] = np.where(right, labels, wrong_token)
        previous = np.where(right, -1, wrong_token)
        noisy = margin + 0.4 * rng.standard_normal(n)
        conf = 1.0 / (1.0 + np.exp(-noisy))
        confidence[:, k] = np.clip(conf, 1.0 / vocab, 1.0)
    return predictions, confidence, labels


def _normal_quantile(p: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(np.clip(p, 1e-300, 1 - 1e-16))


def make_tokens(
    n: int,
    n_exits: int = 24,
    vocab: int = 32_000,
    seed: int = 0,
    out: str | Path | None = None,
    verbose: bool = False,
) -> dict[str, np.ndarray]:
    """Score-only multi-exit outputs of ``n`` tokens (see the module docstring for the model).

    Parameters
    ----------
    n : int
        Number of tokens (samples).
    n_exits : int, default=24
    vocab : int, default=32000
        Number of classes.
    seed : int, default=0
    out : path, optional
        A folder: the arrays are written there as ``predictions.npy``, ``confidence.npy``,
        ``labels.npy`` and ``costs.npy`` (uncompressed, memory-mappable) chunk by chunk, and
        returned memory-mapped read-only.
    verbose : bool, default=False
        Print one line per 16 chunks.

    Returns
    -------
    dict with ``predictions`` int32 (n, n_exits), ``confidence`` float32 (n, n_exits) in
    ``[1 / vocab, 1]``, ``labels`` int32 (n,), ``costs`` float64 (n_exits,) cumulative FLOPs.
    """
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    weights = ranks**-_ZIPF_EXPONENT
    cdf = np.cumsum(weights) / weights.sum()
    costs = decoder_costs(n_exits, vocab=vocab)
    shapes = {
        "predictions": ((n, n_exits), np.int32),
        "confidence": ((n, n_exits), np.float32),
        "labels": ((n,), np.int32),
    }
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "costs.npy", costs)
        arrays = {
            name: np.lib.format.open_memmap(folder / f"{name}.npy", "w+", dtype, shape)
            for name, (shape, dtype) in shapes.items()
        }
    else:
        arrays = {name: np.empty(shape, dtype) for name, (shape, dtype) in shapes.items()}
    start = time.perf_counter()
    for index, lo in enumerate(range(0, n, CHUNK)):
        hi = min(lo + CHUNK, n)
        preds, conf, labels = _chunk(seed, index, CHUNK, n_exits, vocab, cdf)
        arrays["predictions"][lo:hi] = preds[: hi - lo]
        arrays["confidence"][lo:hi] = conf[: hi - lo]
        arrays["labels"][lo:hi] = labels[: hi - lo]
        if verbose and index % 16 == 15:
            print(f"  tokens: {hi:,} of {n:,} ({time.perf_counter() - start:.0f} s)", flush=True)
    if out is not None:
        for array in arrays.values():
            array.flush()
        del arrays
        return load_tokens(out)
    return {**arrays, "costs": costs}


def load_tokens(folder: str | Path) -> dict[str, np.ndarray]:
    """The arrays written by :func:`make_tokens` (``out=``), memory-mapped read-only."""
    folder = Path(folder)
    names = ("predictions", "confidence", "labels", "costs")
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--exits", type=int, default=24)
    parser.add_argument("--vocab", type=int, default=32_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    tokens = make_tokens(args.n, args.exits, args.vocab, args.seed, args.out, verbose=True)
    seconds = time.perf_counter() - start
    correct = (
        tokens["predictions"][: min(args.n, 1_000_000)]
        == tokens["labels"][: min(args.n, 1_000_000), None]
    )
    conf = tokens["confidence"][: min(args.n, 1_000_000)]
    agree = (
        tokens["predictions"][: min(args.n, 1_000_000), 1:]
        == tokens["predictions"][: min(args.n, 1_000_000), :-1]
    )
    print(f"{args.n:,} tokens x {args.exits} exits in {seconds:.1f} s")
    print("accuracy per exit:", np.round(correct.mean(axis=0), 3).tolist())
    print("mean confidence per exit:", np.round(conf.mean(axis=0, dtype=np.float64), 3).tolist())
    print("neighbours agree:", np.round(agree.mean(axis=0), 3).tolist())


if __name__ == "__main__":
    main()
