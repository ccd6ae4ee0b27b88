"""The `nas` command line: one group, one subcommand per stage of the workflow. Each command only
parses its options, calls `nas.api` and prints.

Every user-facing failure (bad space, bad arch, missing corpus, ...) ends with one line on stderr
and a non-zero exit, never a traceback: `main()` turns `UserError` into that line.
"""
from __future__ import annotations

import sys

import click

from nas.cli.export import export_cmd, measure_cmd, retrain_cmd
from nas.cli.latency import fit_predictor_cmd, hardware_cmd, predict_cmd, profile_cmd
from nas.cli.search import search_cmd
from nas.cli.space import space
from nas.cli.supernet import evaluate_cmd, generate_cmd, train_supernet_cmd, translate_cmd
from space.errors import UserError

WORKFLOW = """\b
Hardware-aware neural architecture search for Transformers.
\b
Workflow:  train-supernet -> profile -> fit-predictor -> search -> export -> measure -> retrain
Main job:  nas search --hardware a100 --latency-budget 20ms
Python:    from nas import api   (docs/api.md)
"""


@click.group(help=WORKFLOW, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="hwnas")
def cli() -> None:
    pass


for _command in (space, train_supernet_cmd, evaluate_cmd, export_cmd, generate_cmd, translate_cmd, profile_cmd,
                 predict_cmd, hardware_cmd, fit_predictor_cmd, search_cmd, retrain_cmd, measure_cmd):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="nas", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("nas: interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:  # one line, like every other bad input
        where = e.ctx.command_path if e.ctx else "nas"
        click.echo(f"{where}: error: {e.format_message()} (see `{where} --help`)", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"nas: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except UserError as e:
        click.echo(f"nas: error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("nas: interrupted; what was saved is kept", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
