"""Engineering units for costs, chosen from the data, so that numbers read at a glance.

A table that prints ``3.025e+05`` next to ``4.8e+05`` makes the reader do the arithmetic;
``0.303 MFLOPs`` next to ``0.480 MFLOPs`` does not. :func:`cost_unit` picks one prefix for a
whole table or figure from its largest cost: counted units (FLOPs, MACs, ...) take an SI prefix
(k, M, G, T), times take s, ms, us or ns.

Examples
--------
>>> from eeopt.units import cost_unit
>>> unit = cost_unit([15360.0, 261120.0, 1738240.0], "FLOPs")
>>> unit.label, unit.format(302507.0)
('MFLOPs', '0.303 MFLOPs')
>>> cost_unit([0.00012, 0.00027], "s").label
'us'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: SI prefixes for counted units, largest first.
_COUNT_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
#: Time units and their length in seconds, largest first.
_TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))
#: Counted units that may carry an SI prefix already ("GFLOPs", "MMACs").
_COUNTED = {"FLOP", "FLOPs", "FLOPS", "MAC", "MACs", "MACS", "ops", "OPs", "OPS"}
_SECONDS = {"s", "sec", "secs", "second", "seconds"}
_TIME_ALIASES = {"ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class CostUnit:
    """How to show costs: divide by ``factor`` and write ``label`` after the number.

    Attributes
    ----------
    factor : float
        Costs in the data's units are divided by it (1e6 for MFLOPs from FLOPs).
    label : str
        The unit shown ("MFLOPs", "ms"); empty when the data has no units.
    """

    factor: float = 1.0
    label: str = ""

    def scale(self, values: Any) -> np.ndarray:
        """``values`` (in the data's units) in this unit."""
        return np.asarray(values, dtype=np.float64) / self.factor

    def number(self, value: float, digits: int = 3) -> str:
        """The number alone, with ``digits`` significant digits (``0.303``, ``1.74``)."""
        x = float(value) / self.factor
        if not np.isfinite(x):
            return "n/a"
        if x == 0:
            return "0"
        decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(x)))))
        return f"{x:.{decimals}f}"

    def format(self, value: float, digits: int = 3) -> str:
        """The number and the unit (``0.303 MFLOPs``)."""
        number = self.number(value, digits)
        return f"{number} {self.label}" if self.label else number

    def axis_label(self, quantity: str = "Mean cost per sample") -> str:
        return f"{quantity} ({self.label})" if self.label else quantity


def cost_unit(costs: Any, units: str | None = None) -> CostUnit:
    """The unit to show ``costs`` in, chosen from their largest value.

    Parameters
    ----------
    costs : array-like
        Costs in the data's units (cumulative exit costs, mean costs, budgets).
    units : str, optional
        The data's units, e.g. ``metadata["cost_units"]``: a counted unit ("FLOPs", "MACs")
        gets an SI prefix so that the largest cost lies in [1, 1000); a time ("s", "ms", "us")
        is shown in s, ms, us or ns the same way. No units (layer counts): shown as they are.

    Returns
    -------
    CostUnit
    """
    units = (units or "").strip()
    values = np.abs(np.asarray(costs, dtype=np.float64).ravel())
    values = values[np.isfinite(values)]
    largest = float(values.max()) if values.size else 0.0
    if not units or largest == 0:
        return CostUnit(1.0, units)
    if units.lower() in _SECONDS or units in _TIME_ALIASES:
        seconds = 1.0 if units.lower() in _SECONDS else _TIME_ALIASES[units]
        for label, length in _TIME_UNITS:
            if largest * seconds >= length or label == "ns":
                return CostUnit(length / seconds, label)
    if units[0] in "kMGT" and units[1:] in _COUNTED:
        return CostUnit(1.0, units)  # already prefixed ("GFLOPs"): keep it as given
    for factor, prefix in _COUNT_PREFIXES:
        if largest >= factor:
            return CostUnit(factor, prefix + units)
    return CostUnit(1.0, units)


def data_cost_unit(costs: Any, metadata: dict | None) -> CostUnit:
    """:func:`cost_unit` with the units recorded in an ExitData's ``metadata["cost_units"]``."""
    return cost_unit(costs, str((metadata or {}).get("cost_units", "")) or None)
