"""`nas space list|show|sample`: look at a search space before spending compute on it."""
from __future__ import annotations

import sys

import click
from rich.table import Table

from nas.api import sample_archs
from nas.cli._common import stdout_console
from space import ATTENTION_TYPES, Workload, analytic_cost, builtin_spaces, load_space
from space.arch import dump_yaml
from space.display import arch_summary, human


def _choices(values) -> str:
    return ", ".join(str(v) for v in values)


@click.group("space", help="Inspect search spaces: list, show, sample. Attention types: "
             + ", ".join(ATTENTION_TYPES) + ".")
def space() -> None:
    pass


@space.command("list", help="The shipped search spaces.")
def list_cmd() -> None:
    table = Table("space", "kind", "size", "description", box=None)
    for name in builtin_spaces():
        s = load_space(name)
        table.add_row(name, s.kind, f"{s.size():.2e}", s.description.split(". ")[0].rstrip(".") + ".")
    stdout_console().print(table)


@space.command("show", help="Dimensions, choices, size, and the smallest and largest arch with their cost.")
@click.argument("space_name", metavar="NAME|PATH")
@click.option("--workload", default=None, metavar="SPEC",
              help="Workload for the cost, e.g. batch=1,len=64,gen=32 (default: the space's).")
def show_cmd(space_name: str, workload: str | None) -> None:
    s = load_space(space_name)
    w = Workload.parse(workload, base=s.workload) if workload else s.workload
    con = stdout_console()
    con.print(f"[bold]{s.name}[/bold]  ({s.kind})  {s.description}")
    con.print(f"head size {s.head_dim}, vocabulary {s.vocab_size}, max length {s.max_len}")
    con.print(f"precision: {{{_choices(s.precision)}}}  (each where the hardware runs it; {s.precision[0]} the reference)")
    for name, ss in s.stacks:
        t = Table(title=f"{name} stack", box=None, show_header=False, title_justify="left")
        t.add_row("embed", _choices(ss.embed))
        t.add_row("depth", _choices(ss.depth))
        t.add_row("heads", _choices(ss.heads) + f"  (attention width = heads x {s.head_dim})")
        t.add_row("kv heads", _choices(ss.kv_heads) + "  (divisors of heads only)" if ss.kv_heads else "= heads")
        t.add_row("ffn", _choices(ss.ffn) if ss.ffn else f"ratio {_choices(ss.ffn_ratio)} of embed")
        for kind, params in ss.attention:
            spec = ATTENTION_TYPES[kind]
            extra = f" {spec.param} in {{{_choices(params)}}}" if params else ""
            t.add_row("attention", f"{kind}{extra}  - {spec.summary}")
        if ss.cross_layers:
            t.add_row("cross-attn", f"reads the last {{{_choices(ss.cross_layers)}}} encoder layers, "
                                    f"heads {{{_choices(ss.cross_heads)}}}")
        con.print(t)
    size = s.size()
    con.print(f"size: [bold]{size:,}[/bold] archs (~{size:.2e})")
    table = Table("arch", "id", "params", "FLOPs", "bytes moved", title=f"analytic cost under workload {w}",
                  title_justify="left", box=None)
    extremes = (("smallest", s.smallest()), ("largest", s.largest()))
    for label, arch in extremes:
        c = analytic_cost(arch, w)
        table.add_row(label, arch.id, human(c.params), human(c.flops), human(c.bytes, "B"))
    con.print(table)
    for label, arch in extremes:
        con.print(f"{label}: {arch_summary(arch)}", soft_wrap=True, highlight=False, markup=False)


@space.command("sample", help="K archs of the space as YAML (every --arch FILE option reads it).")
@click.argument("space_name", metavar="NAME|PATH")
@click.option("-n", "count", default=1, show_default=True, type=click.IntRange(min=1), help="How many archs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the sampler.")
@click.option("--unique/--no-unique", default=True, show_default=True, help="Skip duplicates.")
def sample_cmd(space_name: str, count: int, seed: int, unique: bool) -> None:
    s = load_space(space_name)
    archs = sample_archs(s, count, seed=seed, unique=unique)
    sys.stdout.write(f"# {len(archs)} archs of space {s.name}, seed {seed}\n")
    sys.stdout.write(dump_yaml([a.to_dict() for a in archs]))
