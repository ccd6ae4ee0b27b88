"""What every command shares: where output goes, and the progress shown while it works."""
from __future__ import annotations

from rich.console import Console

from nas.api.progress import ConsoleProgress

console = Console(stderr=True, soft_wrap=True)  # messages and progress: stderr, so stdout stays the result
PROGRESS = ConsoleProgress(console)


def stdout_console() -> Console:
    """Tables go to stdout; in a pipe or a log they keep their full width instead of wrapping at 80."""
    c = Console()
    return c if c.is_terminal else Console(width=200)


def choices_help(names: list[str]) -> str:
    return ", ".join(names)
