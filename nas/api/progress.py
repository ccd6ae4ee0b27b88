"""Progress of long work, as an object the caller chooses.

Every API function takes `progress`: True (the default) shows it on stderr — a rich progress bar
on a terminal or in a notebook, one plain line every few seconds in a log (CI, nohup, a pipe), so a
long run never looks hung — False silences it, and any object with the `Progress` methods receives
it instead (a GUI, a logger, a test).
"""
from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator, Protocol

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, ProgressColumn, Task as RichTask,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text


class Task(Protocol):
    def update(self, completed: int, info: str | None = None) -> None:
        """`completed` units done so far; `info` a short live summary (a loss, a rate)."""

    def advance(self, n: int = 1, info: str | None = None) -> None: ...


class Progress(Protocol):
    def note(self, text: str) -> None:
        """A one-line message: what is about to happen, and why."""

    def task(self, description: str, total: int, unit: str = "it") -> ContextManager[Task]:
        """A stage of `total` units."""


class _SilentTask:
    def update(self, completed: int, info: str | None = None) -> None:
        pass

    def advance(self, n: int = 1, info: str | None = None) -> None:
        pass


class Silent:
    def note(self, text: str) -> None:
        pass

    def task(self, description: str, total: int, unit: str = "it") -> ContextManager[Task]:
        return nullcontext(_SilentTask())


class RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: RichTask) -> Text:
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
    """One stage on the console: count, rate, elapsed, ETA and live figures."""

    def __init__(self, console: Console, description: str, total: int, unit: str, every: float) -> None:
        self.console, self.description, self.total, self.unit, self.every = console, description, total, unit, every
        self.live = console.is_terminal or console.is_jupyter
        self.done, self.start, self.last_print, self.info = 0, time.perf_counter(), 0.0, ""
        self._progress: RichProgress | None = None
        if self.live:
            self._progress = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=28),
                                          MofNCompleteColumn(), RateColumn(unit), TimeElapsedColumn(),
                                          TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                          console=console, refresh_per_second=4)
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
        self.console.print(f"{self.description}: {self.done}/{self.total} ({100 * self.done / max(1, self.total):.0f}%) "
                           f"{_rate(speed, self.unit)} elapsed {_clock(elapsed)} eta {eta}  {self.info}",
                           highlight=False, markup=False, soft_wrap=True)


class ConsoleProgress:
    """Progress on stderr (the default)."""

    def __init__(self, console: Console | None = None, every: float = 10.0) -> None:
        self.console = console or Console(stderr=True)
        self.every = every

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    @contextmanager
    def task(self, description: str, total: int, unit: str = "it") -> Iterator[Bar]:
        bar = Bar(self.console, description, total, unit, self.every)
        if bar._progress is not None:
            with bar._progress:
                yield bar
        else:
            yield bar


def as_progress(progress: "Progress | bool | None") -> Progress:
    """True (or None): on the console; False: silent; an object: itself."""
    if progress is True or progress is None:
        return ConsoleProgress()
    if progress is False:
        return Silent()
    return progress


SILENT = Silent()
