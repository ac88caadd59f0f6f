"""eeopt.io: MSDNet-family caches, cost files, plain arrays; clear errors on malformed files."""

import numpy as np
import pytest
from conftest import make_multi_exit

from eeopt import io
from eeopt.data import ExitData


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def _exits_first_probs(n=50, n_exits=4, n_classes=5, seed=0):
    logits, labels = make_multi_exit(n=n, n_exits=n_exits, n_classes=n_classes, seed=seed)
    probs = _softmax(logits).astype(np.float32)  # (n, K, C)
    return probs, labels


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_msdnet_cache_round_trip_transposes_once(tmp_path, torch):
    val_probs, val_labels = _exits_first_probs(n=60, seed=1)
    test_probs, test_labels = _exits_first_probs(n=40, seed=2)
    path = tmp_path / "logits_single.pth"
    torch.save(
        (
            torch.from_numpy(val_probs.transpose(1, 0, 2).copy()),
            torch.from_numpy(val_labels),
            torch.from_numpy(test_probs.transpose(1, 0, 2).copy()),
            torch.from_numpy(test_labels),
        ),
        path,
    )
    val, test = io.load_msdnet_cache(path, costs=[1.0, 2.0, 4.0, 8.0])
    assert isinstance(val, ExitData) and isinstance(test, ExitData)
    np.testing.assert_array_equal(val.probs, val_probs)
    np.testing.assert_array_equal(test.probs, test_probs)
    np.testing.assert_array_equal(val.labels, val_labels)
    np.testing.assert_array_equal(test.labels, test_labels)
    np.testing.assert_array_equal(val.costs, [1.0, 2.0, 4.0, 8.0])
    assert (val.n_samples, val.n_exits, val.n_classes) == (60, 4, 5)


def test_msdnet_cache_with_flops_pth_and_seconds_csv(tmp_path, torch):
    probs, labels = _exits_first_probs(n=30, n_exits=3)
    pred = torch.from_numpy(probs.transpose(1, 0, 2).copy())
    torch.save(
        (pred, torch.from_numpy(labels), pred, torch.from_numpy(labels)),
        tmp_path / "logits_single.pth",
    )
    torch.save([1.5e6, 3e6, 4.5e6], tmp_path / "flops.pth")
    (tmp_path / "seconds.csv").write_text("0.001\n0.002\n0.0035\n")
    flops = io.read_costs(tmp_path / "flops.pth")
    seconds = io.read_costs(tmp_path / "seconds.csv")
    np.testing.assert_array_equal(flops, [1.5e6, 3e6, 4.5e6])
    np.testing.assert_array_equal(seconds, [0.001, 0.002, 0.0035])
    val, _ = io.load_msdnet_cache(tmp_path / "logits_single.pth", costs=seconds)
    np.testing.assert_array_equal(val.costs, seconds)


def test_msdnet_cache_wrong_tuple_length(tmp_path, torch):
    path = tmp_path / "bad.pth"
    torch.save((torch.zeros(3, 4, 5), torch.zeros(4, dtype=torch.int64)), path)
    with pytest.raises(ValueError, match=r"path .*\(val_pred, val_target, test_pred"):
        io.load_msdnet_cache(path)


def test_msdnet_cache_wrong_rank(tmp_path, torch):
    path = tmp_path / "bad.pth"
    labels = torch.zeros(4, dtype=torch.int64)
    torch.save((torch.zeros(4, 5), labels, torch.zeros(4, 5), labels), path)
    with pytest.raises(ValueError, match=r"val_pred .*\(n_exits, n_samples, n_classes\)"):
        io.load_msdnet_cache(path)


def test_msdnet_cache_labels_wrong_rank(tmp_path, torch):
    probs, _ = _exits_first_probs(n=10, n_exits=2)
    pred = torch.from_numpy(probs.transpose(1, 0, 2).copy())
    torch.save(
        (pred, torch.zeros(10, 1, dtype=torch.int64), pred, torch.zeros(10, dtype=torch.int64)),
        tmp_path / "bad.pth",
    )
    with pytest.raises(ValueError, match="val_target"):
        io.load_msdnet_cache(tmp_path / "bad.pth")


def test_msdnet_cache_too_few_costs(tmp_path, torch):
    probs, labels = _exits_first_probs(n=10, n_exits=4)
    pred = torch.from_numpy(probs.transpose(1, 0, 2).copy())
    torch.save((pred, torch.from_numpy(labels), pred, torch.from_numpy(labels)), tmp_path / "c.pth")
    with pytest.raises(ValueError, match=r"costs has 3 values but the outputs have 4 exits"):
        io.load_msdnet_cache(tmp_path / "c.pth", costs=[1.0, 2.0, 3.0])


def test_read_costs_csv_names_the_bad_line(tmp_path):
    path = tmp_path / "seconds.csv"
    path.write_text("0.1\n0.2\nabc\n0.4\n")
    with pytest.raises(ValueError, match=r"line 3: 'abc' is not a number"):
        io.read_costs(path)


def test_read_costs_csv_with_header_is_rejected(tmp_path):
    path = tmp_path / "seconds.csv"
    path.write_text("seconds\n0.1\n")
    with pytest.raises(ValueError, match=r"line 1: .*no header"):
        io.read_costs(path)


def test_read_costs_empty_csv(tmp_path):
    path = tmp_path / "seconds.csv"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no costs"):
        io.read_costs(path)


def test_read_costs_csv_skips_blank_lines(tmp_path):
    path = tmp_path / "seconds.csv"
    path.write_text("1\n\n2.5\n3e1\n")
    np.testing.assert_array_equal(io.read_costs(path), [1.0, 2.5, 30.0])


def test_read_costs_pth_nested_list_is_rejected(tmp_path, torch):
    torch.save([[1.0, 2.0], [3.0, 4.0]], tmp_path / "flops.pth")
    with pytest.raises(ValueError, match="flat list of cumulative costs"):
        io.read_costs(tmp_path / "flops.pth")


def test_load_arrays_samples_first_npy(tmp_path):
    logits, labels = make_multi_exit(n=80, n_exits=3, n_classes=4)
    np.save(tmp_path / "logits.npy", logits)
    np.save(tmp_path / "labels.npy", labels)
    data = io.load_arrays(tmp_path / "logits.npy", tmp_path / "labels.npy", costs=[1, 2, 3])
    np.testing.assert_allclose(data.probs, _softmax(logits), rtol=1e-12)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.costs, [1.0, 2.0, 3.0])


def test_load_arrays_exits_first_npz_and_cost_file(tmp_path):
    probs, labels = _exits_first_probs(n=25, n_exits=3, n_classes=4)
    np.savez(tmp_path / "p.npz", probs=probs.transpose(1, 0, 2))
    np.savez(tmp_path / "y.npz", labels=labels)
    (tmp_path / "seconds.csv").write_text("1\n2\n3\n")
    data = io.load_arrays(
        tmp_path / "p.npz",
        tmp_path / "y.npz",
        tmp_path / "seconds.csv",
        axis_order="exits-first",
        input="probs",
    )
    np.testing.assert_array_equal(data.probs, probs)
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.costs, [1.0, 2.0, 3.0])


def test_load_arrays_transposed_without_axis_order_says_how(tmp_path):
    probs, labels = _exits_first_probs(n=25, n_exits=3, n_classes=4)
    np.save(tmp_path / "p.npy", probs.transpose(1, 0, 2))
    np.save(tmp_path / "y.npy", labels)
    with pytest.raises(ValueError, match="transpose"):
        io.load_arrays(tmp_path / "p.npy", tmp_path / "y.npy")


def test_load_arrays_bad_axis_order_and_rank(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    with pytest.raises(ValueError, match="axis_order must be one of"):
        io.load_arrays(tmp_path / "flat.npy", axis_order="exits_first")
    with pytest.raises(ValueError, match=r"probs_or_logits_path must hold a 3-D array"):
        io.load_arrays(tmp_path / "flat.npy")


def test_load_arrays_ambiguous_npz(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 2, 2)), b=np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"probs_or_logits_path .*name the array"):
        io.load_arrays(tmp_path / "two.npz")


def test_load_arrays_wrong_extension(tmp_path):
    (tmp_path / "p.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=r"probs_or_logits_path must be a \.npy or \.npz"):
        io.load_arrays(tmp_path / "p.txt")


def test_save_exit_data_round_trip(tmp_path):
    logits, labels = make_multi_exit(n=30, n_exits=3, n_classes=4)
    data = ExitData.from_logits(logits, labels, [1.0, 2.0, 3.0], metadata={"name": "x"})
    io.save_exit_data(data, tmp_path / "x.npz")
    back = ExitData.load(tmp_path / "x.npz")
    np.testing.assert_array_equal(back.probs, data.probs)
    np.testing.assert_array_equal(back.labels, data.labels)
    np.testing.assert_array_equal(back.costs, data.costs)
    assert back.metadata == {"name": "x"}
    with pytest.raises(TypeError, match="data must be an ExitData"):
        io.save_exit_data(logits, tmp_path / "y.npz")


def test_missing_torch_gives_install_hint(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match=r'pip install "eeopt\[torch\]"'):
        io.load_msdnet_cache(tmp_path / "logits_single.pth")
    with pytest.raises(ImportError, match=r'pip install "eeopt\[torch\]"'):
        io.read_costs(tmp_path / "flops.pth")


def test_importing_eeopt_io_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, eeopt, eeopt.io, eeopt.datasets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    "text, match", [("1\n3\n2\n", "non-decreasing"), ("0\n1\n", "positive"), ("1\nnan\n", "NaN")]
)
def test_read_costs_validates_the_costs_and_names_the_file(tmp_path, text, match):
    path = tmp_path / "seconds.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        io.read_costs(path)
    assert "seconds.csv" in str(info.value)
