"""One progress display for every long stage: count, rate, elapsed, ETA and live figures.

On a terminal it is a rich progress bar; in a log (CI, nohup, a pipe) it prints one plain line every
few seconds instead, so a long run never looks hung.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(_rate(speed, self.unit), style="progress.data.speed")


def _rate(speed: float | None, unit: str) -> str:
    if not speed:
        return f"? {unit}/s"
    return f"{speed:.2f} {unit}/s" if speed >= 0.1 else f"{1 / speed:.1f} s/{unit}"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Bar:
    """`update(completed, info=...)` or `advance(n, info=...)`; `info` is a short live summary."""

    def __init__(self, description: str, total: int, unit: str, every: float) -> None:
        self.description, self.total, self.unit, self.every = description, total, unit, every
        self.live = console.is_terminal
        self.done, self.start, self.last_print, self.info = 0, time.perf_counter(), 0.0, ""
        self._progress: Progress | None = None
        if self.live:
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=28),
                                      MofNCompleteColumn(), RateColumn(unit), TimeElapsedColumn(), TextColumn("eta"),
                                      TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
                                      refresh_per_second=4)
            self._task = self._progress.add_task(description, total=total, info="")

    def update(self, completed: int, info: str | None = None) -> None:
        self.done = completed
        if info is not None:
            self.info = info
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, info=self.info)
        elif time.perf_counter() - self.last_print >= self.every or completed >= self.total:
            self._print_line()

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.update(self.done + n, info)

    def _print_line(self) -> None:
        self.last_print = now = time.perf_counter()
        elapsed = now - self.start
        speed = self.done / elapsed if elapsed > 0 and self.done else None
        eta = _clock((self.total - self.done) / speed) if speed else "?"
        console.print(f"{self.description}: {self.done}/{self.total} ({100 * self.done / max(1, self.total):.0f}%) "
                      f"{_rate(speed, self.unit)} elapsed {_clock(elapsed)} eta {eta}  {self.info}",
                      highlight=False, markup=False, soft_wrap=True)


@contextmanager
def progress(description: str, total: int, unit: str = "it", every: float = 10.0) -> Iterator[Bar]:
    bar = Bar(description, total, unit, every)
    if bar._progress is not None:
        with bar._progress:
            yield bar
    else:
        yield bar


def stdout_console() -> Console:
    """Tables go to stdout; in a pipe or a log they keep their full width instead of wrapping at 80."""
    c = Console()
    return c if c.is_terminal else Console(width=200)
