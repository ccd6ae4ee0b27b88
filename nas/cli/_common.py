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


def device_options(f):
    """--device and --precision, the same on every command that runs a model."""
    import click
    from space.arch import EVAL_PRECISIONS
    f = click.option("--precision", type=click.Choice(EVAL_PRECISIONS), default=None,
                     help="Autocast precision over fp32 weights (default: bf16 on a CUDA GPU that has it, "
                          "fp32 elsewhere; on CPUs fp32 is the fastest).")(f)
    f = click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps",
                     help="Where the model runs (auto: CUDA when present, else the CPU).")(f)
    return f
