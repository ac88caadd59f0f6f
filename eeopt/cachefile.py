"""eeopt's cache files: a ``.npz`` (compressed or not) or a folder of ``.npy`` files.

:meth:`eeopt.ExitData.save` and :meth:`eeopt.ExitData.load` call these. A cache holds one set of
outputs — ``probs`` or ``logits`` ``(n_samples, n_exits, n_classes)``, or ``predictions`` (and
``confidence``) ``(n_samples, n_exits)`` — with optional ``labels``, ``costs``, ``n_classes``,
``confidence_name`` and ``metadata`` (a JSON string). A researcher's own ``np.savez(f,
logits=..., labels=...)`` is a cache too.

Memory-mapping (``mmap=True``) reads nothing up front: a folder's ``.npy`` files are opened with
``numpy.load(mmap_mode="r")``; an uncompressed ``.npz`` is a zip archive whose members are stored
as they are, so each array is mapped at its offset inside the file. A compressed ``.npz`` cannot
be mapped (an error says how to write one that can).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from eeopt.data import ExitData

#: The arrays a cache may hold; anything else is reported and left out.
KEYS = (
    "probs",
    "logits",
    "predictions",
    "confidence",
    "labels",
    "costs",
    "n_classes",
    "confidence_name",
    "metadata",
)
_OUTPUTS = ("probs", "logits", "predictions")


def write(data: ExitData, path: str | os.PathLike, *, compress: bool = True) -> None:
    """Write ``data`` to ``path`` (``.npz``: one file; anything else: a folder of ``.npy``)."""
    arrays: dict[str, np.ndarray] = {}
    if data.has_probs:
        arrays["probs"] = data.probs
    else:
        arrays["predictions"] = data.predictions
        if data.n_classes_given:
            arrays["n_classes"] = np.array(data.n_classes)
        if data.confidence_name is not None:
            arrays["confidence"] = data.score(data.confidence_name)
            arrays["confidence_name"] = np.array(data.confidence_name)
    if data.labels is not None:
        arrays["labels"] = data.labels
    if data.has_costs:
        arrays["costs"] = data.costs
    arrays["metadata"] = np.array(json.dumps(data.metadata))
    path = Path(path)
    if path.suffix == ".npz":
        (np.savez_compressed if compress else np.savez)(path, **arrays)
        return
    path.mkdir(parents=True, exist_ok=True)
    for key, value in arrays.items():
        np.save(path / f"{key}.npy", value, allow_pickle=False)


def read(path: str | os.PathLike, *, input: str = "auto", mmap: bool = False) -> ExitData:
    """Read a cache written by :func:`write` or by ``np.savez`` (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        arrays = _read_folder(path, mmap)
    elif not path.exists():
        raise FileNotFoundError(f"path {os.fspath(path)!r} does not exist.")
    elif mmap:
        arrays = _map_npz(path)
    else:
        arrays = _read_npz(path)
    return _assemble(arrays, path, input)


def _read_folder(path: Path, mmap: bool) -> dict[str, np.ndarray]:
    arrays = {}
    for file in sorted(path.glob("*.npy")):
        try:
            arrays[file.stem] = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(file)!r} is not a .npy array file: {exc}") from None
    if not arrays:
        raise ValueError(
            f"folder {os.fspath(path)!r} holds no .npy files; a cache folder holds probs.npy or "
            f"predictions.npy (and labels.npy, costs.npy, ...): see ExitData.save."
        )
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy array (np.load has no `with`)
            raise ValueError("it holds a single array (.npy), not named arrays (.npz)")
        with loaded as f:
            return {key: f[key] for key in f.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(
            f"path {os.fspath(path)!r} is not a .npz file of arrays ({exc}); write one with "
            f"np.savez(path, logits=..., labels=..., costs=...) or ExitData.save."
        ) from None
    except ValueError as exc:
        reason = exc
        if "pickle" in str(exc):  # numpy's guess for any file that is neither zip nor .npy
            with open(path, "rb") as raw:
                head = raw.read(6)
            zipped = head.startswith(b"PK") or head == b"\x93NUMPY"
            reason = (
                "it holds Python objects, not plain arrays"
                if zipped
                else "it is neither a zip archive of arrays nor a numpy file"
            )
        raise ValueError(
            f"path {os.fspath(path)!r} is not a .npz file of arrays ({reason}); write one with "
            f"np.savez(path, logits=..., labels=..., costs=...) or ExitData.save."
        ) from None


def _map_npz(path: Path) -> dict[str, np.ndarray]:
    """Each member of an uncompressed ``.npz`` as a read-only memory map."""
    arrays = {}
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"path {os.fspath(path)!r} is not a .npz file ({exc}).") from None
    with archive, open(path, "rb") as raw:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(
                    f"path {os.fspath(path)!r} is a compressed .npz, which cannot be "
                    f"memory-mapped; write it with ExitData.save(path, compress=False) or "
                    f"np.savez (not savez_compressed), or as a folder, or load with mmap=False."
                )
            arrays[info.filename[:-4]] = _map_member(raw, info, path)
    return arrays


def _map_member(raw: Any, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    # The local header (30 bytes, then the name and an extra field whose lengths it gives)
    # precedes the member's bytes; the central directory's extra field may differ from it.
    raw.seek(info.header_offset)
    header = raw.read(30)
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    raw.seek(info.header_offset + 30 + name_length + extra_length)
    version = np.lib.format.read_magic(raw)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
    else:
        raise ValueError(
            f"path {os.fspath(path)!r}: {info.filename} uses .npy format {version}, which "
            f"cannot be memory-mapped here; load with mmap=False."
        )
    if dtype.hasobject:
        raise ValueError(f"path {os.fspath(path)!r}: {info.filename} holds Python objects.")
    if not shape or 0 in shape:  # scalars and empty arrays: read, nothing to map
        return np.load(path, allow_pickle=False)[info.filename[:-4]]
    return np.memmap(
        path, dtype=dtype, mode="r", offset=raw.tell(), shape=shape, order="F" if fortran else "C"
    )


def _assemble(arrays: dict[str, np.ndarray], path: Path, input: str) -> ExitData:
    where = f"path {os.fspath(path)!r}"
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        warnings.warn(
            f"{where}: left out the array(s) {unknown}; a cache holds {list(KEYS)}.",
            UserWarning,
            stacklevel=4,
        )
    outputs = [k for k in _OUTPUTS if k in arrays]
    if len(outputs) != 1:
        found = "none of them" if not outputs else " and ".join(outputs)
        raise ValueError(
            f"{where} holds {sorted(arrays)}: a cache needs exactly one of probs or logits "
            f"(n_samples, n_exits, n_classes), or predictions (and confidence) "
            f"(n_samples, n_exits); found {found}."
        )
    labels = arrays.get("labels")
    labels = None if labels is None or labels.size == 0 else labels
    costs = arrays.get("costs")
    metadata = json.loads(str(arrays["metadata"])) if "metadata" in arrays else {}
    if outputs == ["predictions"]:
        n_classes = int(arrays["n_classes"]) if "n_classes" in arrays else None
        name = str(arrays["confidence_name"]) if "confidence_name" in arrays else "maxprob"
        return ExitData.from_predictions(
            arrays["predictions"],
            arrays.get("confidence"),
            labels,
            costs,
            n_classes=n_classes,
            confidence_name=name,
            metadata=metadata,
        )
    if outputs == ["logits"]:
        if input == "probs":
            raise ValueError(
                f"{where} stores logits, but input='probs' says probabilities; pass "
                f"input='logits' or 'auto', or store them under the key 'probs'."
            )
        input = "logits"
    return ExitData(
        arrays[outputs[0]], labels, costs, input=input, metadata=metadata, name=outputs[0]
    )
