"""One progress-bar style for every long stage: count, rate, elapsed, ETA, and live figures."""
from __future__ import annotations

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
        if speed is None:
            return Text(f"? {self.unit}/s", style="progress.data.speed")
        return Text(f"{speed:.2f} {self.unit}/s" if speed >= 0.1 else f"{1 / speed:.1f} s/{self.unit}",
                    style="progress.data.speed")


def progress_bar(unit: str = "it") -> Progress:
    """Use as a context manager; add a task with `info=""` and update `info` with live figures."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                    RateColumn(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    TextColumn("{task.fields[info]}"), console=console, refresh_per_second=4)
