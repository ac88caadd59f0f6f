"""The ``Examples`` sections of eeopt's docstrings run and print what they show."""

import doctest
import importlib
import pkgutil

import pytest

import eeopt

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(eeopt.__path__, "eeopt.")
    if not info.name.startswith("eeopt._data")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    if name.startswith("eeopt.torch"):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
