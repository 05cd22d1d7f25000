"""Progress of a long loop (training steps, images, tiles): a tqdm bar when stdout and stderr are
both terminals; otherwise (nohup, SLURM, a pipe) plain lines on stderr, one every
`LINE_EVERY_FRACTION` of the work or `LINE_EVERY_SECONDS`, whichever comes first, and one at the
end: no carriage returns, so log files stay greppable line by line.

    with bar(total, desc="train", unit="step") as progress:
        progress.update(1)
        progress.set_postfix(loss="0.532")

    for item in track(items, total=len(items), desc="verify", unit="image"): ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

LINE_EVERY_SECONDS = 60.0
LINE_EVERY_FRACTION = 0.1
Item = TypeVar("Item")


def on_terminal(streams: Iterable[Any] | None = None) -> bool:
    """Whether every stream (stdout and stderr by default) is a terminal."""
    streams = (sys.stdout, sys.stderr) if streams is None else streams
    return all(getattr(stream, "isatty", lambda: False)() for stream in streams)


class PlainProgress:
    """tqdm's `update`, `set_postfix` and `close` as plain periodic lines:
    `desc: unit n/total (p%), s s, r unit/s, key=value, ...`."""

    def __init__(self, total: int | None, *, desc: str, unit: str, initial: int = 0,
                 disable: bool = False, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 every_seconds: float = LINE_EVERY_SECONDS,
                 every_fraction: float = LINE_EVERY_FRACTION):
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.disable, self.stream, self.clock = disable, stream, clock
        self.every_seconds, self.every_fraction = every_seconds, every_fraction
        self.postfix: dict[str, Any] = {}
        self._start_n, self._start = initial, clock()
        self._line_n, self._line_time = initial, self._start
        self._closed = False

    def line(self) -> str:
        elapsed = self.clock() - self._start
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else (
            f"{self.n}")
        parts = [f"{self.desc}: {self.unit} {done}", f"{elapsed:.0f} s"]
        if elapsed > 0 and self.n > self._start_n:
            rate = (self.n - self._start_n) / elapsed
            parts.append(f"{rate:.3g} {self.unit}/s" if rate < 1000 else f"{rate:.0f} {self.unit}/s")
        parts += [f"{key}={value}" for key, value in self.postfix.items()]
        return ", ".join(parts)

    def _print(self) -> None:
        self._line_n, self._line_time = self.n, self.clock()
        if not self.disable:
            print(self.line(), file=self.stream or sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        due_by_work = (self.total and self.every_fraction > 0 and
                       self.n - self._line_n >= self.every_fraction * self.total)
        if due_by_work or self.clock() - self._line_time >= self.every_seconds:
            self._print()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values

    def close(self) -> None:
        if not self._closed and self.n != self._line_n:
            self._print()
        self._closed = True

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def bar(total: int | None, *, desc: str, unit: str, initial: int = 0, disable: bool = False,
        **tqdm_options: Any) -> tqdm | PlainProgress:
    """A tqdm bar on a terminal (`tqdm_options`: mininterval, leave, ...), plain lines
    elsewhere."""
    if on_terminal():
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                    **tqdm_options)
    return PlainProgress(total, desc=desc, unit=unit, initial=initial, disable=disable)


def track(items: Iterable[Item], *, total: int | None, desc: str, unit: str,
          disable: bool = False, **tqdm_options: Any) -> Iterator[Item]:
    """`items`, with the progress of going through them."""
    with bar(total, desc=desc, unit=unit, disable=disable, **tqdm_options) as progress:
        for item in items:
            yield item
            progress.update(1)
