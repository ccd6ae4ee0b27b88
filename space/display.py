"""How archs and numbers are shown to people: one place for tables, cards and messages."""
from __future__ import annotations

from space.arch import Arch


def human(n: float, unit: str = "") -> str:
    """1234567 -> '1.23M'; keeps tables narrow."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}{unit}"
    return f"{n:.3g}{unit}"


def arch_summary(arch: Arch) -> str:
    """One line per arch: `decoder 192x4 [softmax:4h:768 window/32:4h/2kv:576 ...]`, then its
    precision when it is not fp32 (` int8`): archs that differ only in precision read apart."""
    parts = []
    for name, stack in arch.stacks:
        layers = " ".join(
            f"{l.attn}{'/' + str(l.window or l.proj_len) if (l.window or l.proj_len) else ''}"
            f":{l.heads}h{'/' + str(l.kv_heads) + 'kv' if l.kv_heads != l.heads else ''}:{l.ffn}"
            + (f":x{l.cross_layers}" if l.cross_layers else "")
            for l in stack.layers)
        parts.append(f"{name} {stack.embed}x{stack.depth} [{layers}]")
    return "; ".join(parts) + ("" if arch.precision == "fp32" else f" {arch.precision}")
