import pytest

from eeopt.units import cost_unit, data_cost_unit


@pytest.mark.parametrize(
    ("costs", "units", "label", "shown"),
    [
        ([15360.0, 1738240.0], "FLOPs", "MFLOPs", "1.74"),
        ([9.7e7, 5.81e8], "FLOPs", "MFLOPs", "581"),
        ([2e9, 4.1e9], "MACs", "GMACs", "4.10"),
        ([1200.0, 3400.0], "FLOPs", "kFLOPs", "3.40"),
        ([500.0, 900.0], "FLOPs", "FLOPs", "900"),
        ([0.00012, 0.00061], "s", "us", "610"),
        ([0.0026, 0.0238], "seconds", "ms", "23.8"),
        ([2.0, 3.5], "s", "s", "3.50"),
        ([0.4, 2.4], "ms", "ms", "2.40"),
        ([0.2, 0.9], "ms", "us", "900"),
        ([3.0, 40.0], "GFLOPs", "GFLOPs", "40.0"),
        ([1.0, 2.0, 3.0], None, "", "3.00"),
    ],
)
def test_engineering_unit_from_the_largest_cost(costs, units, label, shown):
    unit = cost_unit(costs, units)
    assert unit.label == label
    assert unit.number(costs[-1]) == shown


def test_format_and_axis_label_and_metadata():
    unit = data_cost_unit([15360.0, 1738240.0], {"cost_units": "FLOPs"})
    assert unit.format(302507.0) == "0.303 MFLOPs"
    assert unit.axis_label() == "Mean cost per sample (MFLOPs)"
    assert data_cost_unit([1.0, 2.0], {}).axis_label() == "Mean cost per sample"
    assert unit.number(float("nan")) == "n/a" and unit.number(0.0) == "0"
