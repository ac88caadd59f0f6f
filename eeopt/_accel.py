"""Optional compilation of eeopt's sequential kernels with numba (``pip install eeopt[fast]``).

A kernel is written once, in the subset of Python that numba compiles (loops over numpy
arrays and scalars). With numba installed, :func:`jit` compiles it on first use (cached on
disk); without numba the same function runs as plain Python: identical results, only slower.
The tests run both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

try:  # pragma: no cover - depends on the environment
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - depends on the environment
    numba = None
    HAVE_NUMBA = False


def jit(fn: F) -> F:
    """Compile ``fn`` with ``numba.njit(cache=True)`` if numba is installed; else return it.

    The compiled dispatcher keeps the Python function as ``.py_func``.
    """
    if numba is None:
        return fn
    return numba.njit(cache=True, nogil=True)(fn)


def python_function(fn: Callable) -> Callable:
    """The plain-Python version of a :func:`jit` kernel (itself without numba)."""
    return getattr(fn, "py_func", fn)
