"""A minimal progress bar for long work (training a scorer, sweeping budgets, extraction).

eeopt's core depends on numpy, scipy, scikit-learn (and its threadpoolctl), cvxpy and matplotlib
only (pyproject.toml), so this stands in for tqdm. ``verbose=False`` turns it off; it writes to
stderr and redraws at most 10 times a second on a terminal. Elsewhere (a log file, CI) it writes
one line when the work ends, so logs carry no carriage returns or escape codes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")


class Progress:
    """``with Progress(total, "fitting", verbose) as bar: ... bar.update()``.

    Parameters
    ----------
    total : int or None
        Number of steps, if known.
    desc : str
        Shown before the bar.
    verbose : bool, default=True
        False draws nothing.
    file : file-like, default=sys.stderr
    """

    def __init__(
        self, total: int | None, desc: str, verbose: bool = True, file: IO[str] | None = None
    ) -> None:
        self.total, self.desc, self.verbose = total, desc, bool(verbose)
        self.file = file if file is not None else sys.stderr
        self.count = 0
        self.postfix = ""
        self._start = time.perf_counter()
        self._last_draw = 0.0
        isatty = getattr(self.file, "isatty", None)
        self._live = bool(isatty()) if callable(isatty) else False

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.count += n
        if postfix is not None:
            self.postfix = postfix
        now = time.perf_counter()
        if (
            self.verbose
            and self._live
            and (now - self._last_draw >= 0.1 or self.count == self.total)
        ):
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = now - self._start
        if self.total:
            share = min(self.count / self.total, 1.0)
            filled = int(share * 24)
            bar = f"[{'#' * filled}{'.' * (24 - filled)}] {self.count}/{self.total}"
        else:
            bar = f"{self.count}"
        extra = f" {self.postfix}" if self.postfix else ""
        line = f"{self.desc}: {bar} {elapsed:5.1f}s{extra}"
        self.file.write(f"\r{line}\033[K" if self._live else line)
        self.file.flush()

    def close(self) -> None:
        if self.verbose:
            self._draw(time.perf_counter())
            self.file.write("\n")
            self.file.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    iterable: Iterable[T], desc: str, verbose: bool = True, total: int | None = None
) -> Iterator[T]:
    """Iterate with a progress bar."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, verbose) as bar:
        for item in iterable:
            yield item
            bar.update()
