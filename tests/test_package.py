"""The public names of spec sections 7, 10 and 11 exist, and ``import eeopt`` stays light."""

import subprocess
import sys

import pytest

import eeopt


@pytest.mark.parametrize(
    "name",
    [
        "ExitData",
        "fit",
        "load_policy",
        "pareto_front",
        "oracle_front",
        "heldout_front",
        "compare",
        "quantile_thresholds",
        "method_names",
        "Policy",
        "theory",
        "plot",
        "datasets",
        "io",
        "report",
    ],
)
def test_spec_names_are_attributes_of_eeopt(name):
    assert getattr(eeopt, name) is not None
    assert name in dir(eeopt)


def test_submodules_are_reached_lazily_and_unknown_names_fail():
    assert callable(eeopt.plot.plot_fronts) and callable(eeopt.io.load_msdnet_cache)
    assert "mnist1d" in eeopt.datasets.names()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        eeopt.nope  # noqa: B018


def test_import_eeopt_loads_neither_pyplot_nor_torch():
    code = (
        "import sys, eeopt; eeopt.ExitData; "
        "print('matplotlib.pyplot' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]


def test_torch_adapter_names():
    pytest.importorskip("torch")
    for name in ("MultiExitModel", "collect_logits", "run_early_exit", "measure_exit_costs"):
        assert callable(getattr(eeopt.torch, name))
