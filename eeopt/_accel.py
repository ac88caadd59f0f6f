"""Optional compilation of eeopt's sequential kernels with numba (``pip install eeopt[fast]``).

A kernel is written once, in the subset of Python that numba compiles (loops over numpy
arrays and scalars). With numba installed, the first call of any kernel imports numba and
compiles every kernel (cached on disk), so that ``import eeopt`` does not pay for numba;
without numba the same functions run as plain Python: identical results, only slower. The
test suite runs whichever is installed (CI: plain Python).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

HAVE_NUMBA = importlib.util.find_spec("numba") is not None

_KERNELS: list[_Kernel] = []


class _Kernel:
    """A kernel compiled on first use; ``py_func`` is the plain-Python function."""

    def __init__(self, fn: Callable) -> None:
        self.py_func = fn
        self.compiled: Callable | None = None
        self.__name__, self.__doc__ = fn.__name__, fn.__doc__
        _KERNELS.append(self)

    def __call__(self, *args: Any) -> Any:
        if self.compiled is None:
            _compile_all()
        return self.compiled(*args)


def _compile_all() -> None:
    import numba

    for kernel in _KERNELS:
        if kernel.compiled is None:
            kernel.compiled = numba.njit(cache=True, nogil=True)(kernel.py_func)
            # Kernels call each other through their module's globals: numba must find the
            # compiled dispatchers there when it compiles a caller.
            kernel.py_func.__globals__[kernel.__name__] = kernel.compiled


def jit(fn: Callable) -> Callable:
    """Compile ``fn`` with numba on first use if numba is installed; else return it as is."""
    return _Kernel(fn) if HAVE_NUMBA else fn
