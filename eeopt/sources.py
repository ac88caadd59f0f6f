"""Where the command line's ``DATA`` comes from, and the checks made before any work.

``DATA`` is one of: the name of a shipped dataset (``eeopt datasets``); a cache (``.npz`` with
``probs`` or ``logits``, or ``predictions`` and ``confidence``; or a folder of ``.npy`` files,
see :meth:`eeopt.ExitData.load`); a table of per-exit predictions (``.csv``, ``.parquet``, see
:func:`eeopt.io.read_table`); an MSDNet-family cache (``logits_single.pth``). ``--costs``
applies to every kind, shipped names included; without costs anywhere, costs are
``1..n_exits`` and a note says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from eeopt.data import ExitData

#: File suffixes DATA may have.
SUFFIXES = (".npz", ".csv", ".parquet", ".pth")


class SourceError(ValueError):
    """A DATA argument that cannot be read: one line for the user."""


def shipped_names() -> list[str]:
    from eeopt import datasets

    return list(datasets.names())


def load(spec: str, split: str, *, costs: str | None = None, input: str = "auto") -> ExitData:
    """One split of ``spec``: a file or folder as it is; a shipped dataset's or an MSDNet
    cache's ``split`` ("val" or "test")."""
    path = Path(spec)
    if path.suffix == ".pth":
        val, test = _msdnet_pair(path, spec, costs)
        return val if split == "val" else test
    if path.is_dir() or path.suffix == ".npz":
        if not path.exists():
            raise SourceError(f"DATA {spec!r} does not exist.")
        data = ExitData.load(path, input=input)
    elif path.suffix in (".csv", ".parquet") and path.exists():
        from eeopt import io

        data = io.read_table(path)
    elif path.exists():
        raise SourceError(
            f"DATA {spec!r}: expected a .npz cache or a folder of .npy files, a .csv/.parquet "
            f"table, a .pth MSDNet cache or a shipped dataset name."
        )
    elif spec in shipped_names():
        from eeopt import datasets

        data = datasets.load(spec, split)
    else:
        names = ", ".join(shipped_names()) or "none installed"
        raise SourceError(f"DATA {spec!r} is neither a file nor a shipped dataset ({names}).")
    if costs is not None:
        data = data.with_costs(_costs(costs))
        # The data's own cost units no longer describe the costs given (FLOPs -> seconds?).
        data.metadata = {k: x for k, x in data.metadata.items() if k != "cost_units"}
    return data


def load_pair(
    spec: str,
    *,
    costs: str | None = None,
    test: str | None = None,
    input: str = "auto",
    random_state: int = 0,
) -> tuple[ExitData, ExitData]:
    """(validation, test): a shipped dataset's or an MSDNet cache's two splits, ``spec`` and
    ``test``, or one file split in half at random (``random_state``)."""
    if test is not None:
        return load(spec, "val", costs=costs, input=input), load(
            test, "test", costs=costs, input=input
        )
    path = Path(spec)
    if path.suffix == ".pth":  # both splits from one read of the file
        return _msdnet_pair(path, spec, costs)
    if not path.exists() and spec in shipped_names():
        return load(spec, "val", costs=costs, input=input), load(
            spec, "test", costs=costs, input=input
        )
    data = load(spec, "val", costs=costs, input=input)
    order = np.random.default_rng(random_state).permutation(data.n_samples)
    half = data.n_samples // 2
    return data.subset(order[:half]), data.subset(order[half:])


def _msdnet_pair(path: Path, spec: str, costs: str | None) -> tuple[ExitData, ExitData]:
    """Both splits of an MSDNet ``.pth`` cache."""
    if not path.exists():
        raise SourceError(f"DATA {spec!r} does not exist.")
    from eeopt import io

    return io.load_msdnet_cache(path, costs=_costs(costs))


def note_missing_costs(data: ExitData, spec: str) -> None:
    """A note on stderr when the data carry no costs (the default ``1..n_exits``)."""
    if not data.has_costs:
        print(
            f"eeopt: note: {spec} has no costs; using 1..{data.n_exits} (one per exit). Pass "
            f"--costs FILE (cumulative FLOPs or seconds per exit) for real costs.",
            file=sys.stderr,
        )


def _costs(costs: str | None) -> np.ndarray | None:
    if costs is None:
        return None
    from eeopt import io

    return io.read_costs(costs)


def check_output_file(path: str, option: str, *, force: bool = False) -> Path:
    """An output file that can be written: its folder exists, and it does not exist yet unless
    ``force``. Checked before any work, so that a long fit is not lost at the end."""
    out = Path(path)
    if out.is_dir():
        raise SourceError(f"{option} {path!r} is a folder; give a file name.")
    if not out.parent.exists():
        raise SourceError(
            f"{option} {path!r}: the folder {os.fspath(out.parent)!r} does not exist."
        )
    if out.exists() and not force:
        raise SourceError(f"{option} {path!r} exists; pass --force to replace it, or another name.")
    if not os.access(out.parent, os.W_OK):
        raise SourceError(f"{option} {path!r}: the folder is not writable.")
    return out


def check_output_folder(path: str, option: str) -> Path:
    """An output folder: it exists as a folder or can be made in an existing parent."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise SourceError(f"{option} {path!r} is a file; give a folder name.")
    if not out.exists() and not out.parent.exists():
        raise SourceError(
            f"{option} {path!r}: the folder {os.fspath(out.parent)!r} does not exist."
        )
    return out
