"""Print the per-exit tables of data/README.md from the files in a folder (default: shipped).

Usage: ``python data/build/datasheet_tables.py [DIR]``. Accuracies are recomputed from the
arrays; FLOPs and latencies are read from each file.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHIPPED_DIR  # noqa: E402

from eeopt.data import ExitData  # noqa: E402
from eeopt.datasets import checksum  # noqa: E402


def tables(folder: Path) -> str:
    names = sorted(p.name[: -len("_val.npz")] for p in folder.glob("*_val.npz"))
    out = []
    for name in names:
        val, test = (ExitData.load(folder / f"{name}_{s}.npz") for s in ("val", "test"))
        header = "| exit | " + " | ".join(str(k) for k in range(val.n_exits)) + " |"
        out += [f"### {name}", "", header, "|---" * (val.n_exits + 1) + "|"]
        for split, data in (("val", val), ("test", test)):
            out.append(
                f"| {name} {split} accuracy | "
                + " | ".join(f"{a:.4f}" for a in data.exit_accuracy)
                + " |"
            )
        out.append(
            "| MFLOPs (cumulative) | " + " | ".join(f"{c / 1e6:.4g}" for c in val.costs) + " |"
        )
        out.append(
            "| latency, ms (cumulative) | "
            + " | ".join(f"{s * 1e3:.3g}" for s in val.metadata["costs_seconds"])
            + " |"
        )
        out += [
            "",
            f"{val.n_samples} val / {test.n_samples} test samples, {val.n_classes} classes.",
            "",
            "sha256 (probs, labels, costs):",
            "",
        ]
        for split, data in (("val", val), ("test", test)):
            out.append(f"- `{name}_{split}.npz`: `{checksum(data)}`")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED_DIR
    print(tables(folder))
