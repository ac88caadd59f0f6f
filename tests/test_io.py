"""eeopt.io: MSDNet-family caches, cost files, plain arrays; clear errors on malformed files."""

import numpy as np
import pytest
from conftest import make_multi_exit

import eeopt
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


def _calc_logit(torch, logits_per_exit, targets, softmax=True, long_targets=False):
    """What MSDNet's ``Tester.calc_logit`` returns, written as that code writes it: softmax per
    exit, stacked into ``torch.Tensor().resize_(size)``, targets copied into a float tensor."""
    outputs = [torch.softmax(x, dim=1) if softmax else x for x in logits_per_exit]
    size = (len(outputs), outputs[0].size(0), outputs[0].size(1))
    ts_logits = torch.Tensor().resize_(size).zero_()
    for b, out in enumerate(outputs):
        ts_logits[b].copy_(out)
    if long_targets:  # forks that keep the LongTensor
        return ts_logits, targets
    ts_targets = torch.Tensor().resize_(size[1]).copy_(targets)
    return ts_logits, ts_targets


@pytest.mark.parametrize("softmax, long_targets", [(True, False), (True, True), (False, True)])
def test_msdnet_cache_as_calc_logit_writes_it(tmp_path, torch, softmax, long_targets):
    gen = torch.Generator().manual_seed(0)
    splits = []
    for n in (50, 30):
        logits = [torch.randn(n, 10, generator=gen) * (k + 1) for k in range(4)]
        targets = torch.randint(0, 10, (n,), generator=gen)
        splits.append((logits, targets, _calc_logit(torch, logits, targets, softmax, long_targets)))
    (_, _, (val_pred, val_target)), (_, _, (test_pred, test_target)) = splits
    assert val_target.dtype == (torch.int64 if long_targets else torch.float32)
    path = tmp_path / "logits_single.pth"
    torch.save((val_pred, val_target, test_pred, test_target), path)
    val, test = io.load_msdnet_cache(path)
    for data, (logits, targets, _) in zip((val, test), splits, strict=True):
        assert data.labels.dtype == np.int64
        np.testing.assert_array_equal(data.labels, targets.numpy())
        expected = torch.softmax(torch.stack(logits, dim=1), dim=2).numpy()
        np.testing.assert_allclose(data.probs, expected, rtol=1e-5, atol=1e-6)


def test_msdnet_cache_with_non_integral_targets_names_the_split(tmp_path, torch):
    probs, labels = _exits_first_probs(n=20, n_exits=3)
    pred = torch.from_numpy(probs.transpose(1, 0, 2).copy())
    bad = torch.from_numpy(labels.astype(np.float32) + 0.5)
    torch.save((pred, torch.from_numpy(labels), pred, bad), tmp_path / "logits_single.pth")
    with pytest.raises(ValueError, match="test_target.*non-integral"):
        io.load_msdnet_cache(tmp_path / "logits_single.pth")


# -- tables of per-exit predictions -------------------------------------------------------------
def _published_wide_csv(path, data):
    """A per-exit results file as repositories publish them: id, one pred/conf pair per exit
    (1-based), the label."""
    header = ["id"] + [f"{c}_{k + 1}" for k in range(data.n_exits) for c in ("pred", "conf")]
    lines = [",".join([*header, "label"])]
    for i in range(data.n_samples):
        cells = [f"s{i}"]
        for k in range(data.n_exits):
            cells += [str(data.predictions[i, k]), repr(float(data.maxprob[i, k]))]
        lines.append(",".join([*cells, str(data.labels[i])]))
    path.write_text("\n".join(lines) + "\n")


def test_wide_table_gives_the_same_policies_as_the_full_data(tmp_path):
    val = eeopt.datasets.load("digits", "val")
    path = tmp_path / "exits.csv"
    _published_wide_csv(path, val)
    table = io.read_table(path, costs=val.costs)
    assert table.content == "predictions + maxprob" and table.n_exits == val.n_exits
    np.testing.assert_array_equal(table.predictions, val.predictions)
    np.testing.assert_array_equal(table.maxprob, val.maxprob.astype(np.float64))
    for method in ("maxprob", "beem-a", "patience", "msdnet"):
        target = {"budget": float(val.costs[2])} if method == "msdnet" else {}
        a = eeopt.fit(val, method=method, verbose=False, **target)
        b = eeopt.fit(table, method=method, verbose=False, **target)
        np.testing.assert_array_equal(a.exit_index(val), b.exit_index(table))


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("pred_1,pred_2,label\n0,1,1\n2,2,0\n".encode("utf-8-sig"))
    table = io.read_table(path)
    assert table.n_exits == 2
    np.testing.assert_array_equal(table.predictions, [[0, 1], [2, 2]])


def test_long_table_in_any_row_order(tmp_path):
    rng = np.random.default_rng(0)
    preds = rng.integers(0, 5, size=(6, 3))
    conf = rng.uniform(size=(6, 3)).round(3)
    labels = rng.integers(0, 5, size=6)
    rows = [(f"tok{i}", k, preds[i, k], conf[i, k], labels[i]) for i in range(6) for k in range(3)]
    order = rng.permutation(len(rows))
    rows = [rows[j] for j in order]
    path = tmp_path / "long.csv"
    path.write_text(
        "sample,exit,pred,conf,label\n" + "\n".join(",".join(map(str, r)) for r in rows)
    )
    data = io.read_table(path)
    first_seen = list(dict.fromkeys(r[0] for r in rows))
    index = [int(name[3:]) for name in first_seen]
    np.testing.assert_array_equal(data.predictions, preds[index])
    np.testing.assert_array_equal(data.maxprob, conf[index])
    np.testing.assert_array_equal(data.labels, labels[index])


@pytest.mark.parametrize(
    "text, match",
    [
        ("a,b\n1,2\n", "no pred_<k> columns"),
        ("pred_1,pred_2,conf_1\n1,2,0.5\n", "do not match"),
        ("pred_1,pred_2\n1,x\n", "not a class index"),
        ("pred_1,pred_2\n1,2.5\n", "non-integral"),
        ("sample,exit,pred\na,0,1\na,0,2\n", "every sample needs every exit once"),
        ("sample,exit,pred\na,exit2,1\na,exit10,2\n", "must hold exit numbers"),
        ("pred_1,conf_1\n1,\n", "holds '', not a confidence"),
        ("sample,exit,pred,conf\na,0,1,high\n", "holds 'high', not a confidence"),
        ("pred_1,conf_1\n1,1.5\n", "confidence must lie in"),
        ("", "empty"),
    ],
)
def test_bad_tables_are_named(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        io.read_table(path)


def test_parquet_table_needs_pyarrow_or_reads(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "exits.parquet"
    pq.write_table(pa.table({"pred_0": [1, 2], "pred_1": [1, 1], "label": [1, 0]}), path)
    data = io.read_table(path)
    assert data.content == "predictions" and data.exit_accuracy.tolist() == [0.5, 0.5]
