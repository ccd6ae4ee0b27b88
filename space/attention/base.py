"""An attention type, as the space and the cost model see it (torch-free): whether it can run in a
causal stack, the Layer field that parameterises it, its own parameters' shapes, and what one pass
of it costs beyond the Q/K/V/output projections every type shares (FLOPs, bytes moved, tensor ops,
training activations). Its math lives beside it, keyed by the same name, in `supernet/attention/`.

A new type is two files: a subclass here, registered with `@register`, and its kernel there; the
contract tests (tests/test_attention_units.py) pick both up by themselves.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from space.arch import Layer

# (invocation modes of a pass, as space.cost counts them: "forward" a whole sequence without a cache,
# "prefill" a prompt into an empty cache, "first" one token into an empty cache, "decode" one token
# after others)
MODES = ("forward", "prefill", "first", "decode")


class AttentionType:
    name: ClassVar[str]
    causal: ClassVar[bool]  # can run in a causal (decoder) stack
    param: ClassVar[str | None] = None  # the Layer field that parameterises it, if any
    rope: ClassVar[bool] = False  # takes rotary positions (an arch's `positions: rope`: supernet/attention/rope.py)
    # its kernel writes the output token-major (fused scaled_dot_product_attention), so merging the
    # heads back is a view; otherwise a copy (`space.kernels`)
    token_major: ClassVar[bool] = False
    summary: ClassVar[str]

    def extra_shapes(self, heads: int, head_dim: int, max_len: int, param: int | None) -> dict[str, tuple[int, ...]]:
        """Shapes of this type's own parameters for a layer of `heads` heads and parameter value
        `param` (window, projected length): the supernet's at its largest, a layer's own at its size."""
        return {}

    def own_params(self, layer: "Layer", head_dim: int, max_len: int) -> int:
        """Parameters of this type's own in `layer` (beyond the shared projections)."""
        value = getattr(layer, self.param) if self.param else None
        return sum(math.prod(s) for s in self.extra_shapes(layer.heads, head_dim, max_len, value).values())

    def mixing(self, layer: "Layer", head_dim: int, start: int, q: int, causal: bool) -> tuple[int, int]:
        """(FLOPs, activation/cache values read or written) of the token mixing for q new queries
        after `start` cached positions: everything between the Q/K/V projections and the output one."""
        raise NotImplementedError

    def ops(self, layer: "Layer", q: int, mode: str, causal: bool) -> int:
        """Tensor operations the kernel dispatches per pass (what pays a fixed per-op cost), counted
        from supernet/attention/<type>.py; tests/test_cost.py checks them against real dispatches."""
        raise NotImplementedError

    def state_values(self, layer: "Layer", head_dim: int, context: int) -> int:
        """Values its decode state holds per sequence after `context` tokens (KV cache, window cache,
        recurrent state): what inference memory grows with. A type that cannot decode holds none."""
        return 0

    def kernel_values(self, layer: "Layer", head_dim: int, t: int, causal: bool) -> int:
        """Values its kernel holds at once over a sequence of t tokens (per sequence) beyond the
        block's queries, keys and values: scores, and the copies it makes of them (what its
        prefill's working set adds; `space.memory.activation_peak`)."""
        return 0

    def rope_ops(self, layer: "Layer", q: int, mode: str, causal: bool) -> int:
        """Tensor operations its kernel adds per pass to rotate queries and keys (positions: rope)."""
        return 2 * ROTATE_OPS

    def kernels(self, layer: "Layer", head_dim: int, start: int, q: int, mode: str, causal: bool) -> list[tuple]:
        """The GPU kernels its token mixing launches per pass, per sequence (`space.kernels`): records
        ("gemm", m, n, k), ("attn", queries, keys, heads, kv_heads, causal, groups), ("ew", values).
        The default, for a type that does not list its own: one memory- or compute-bound kernel of
        its `mixing` cost, per op it dispatches beyond the first taking an element-wise launch."""
        flops, values = self.mixing(layer, head_dim, start, q, causal)
        return [("roof", flops, values)] + [("ew", 0)] * max(0, self.ops(layer, q, mode, causal) - 1)

    def rope_kernels(self, layer: "Layer", head_dim: int, q: int, mode: str, causal: bool) -> list[tuple]:
        """The kernels that rotate its queries and keys (positions: rope)."""
        return rotation_kernels(q * layer.heads * head_dim) + rotation_kernels(q * layer.kv_heads * head_dim)

    def train_values(self, layer: "Layer", seq: int, batch: int) -> int:
        """Activation values training keeps for backward beyond the shared ones (scores, ...)."""
        return 0

    def describe(self) -> str:
        return self.summary


ROTATE_OPS = 9  # one rotation (supernet/attention/rope.py `rotate`): two slices, a negation, a cat, two casts' muls, an add
ROPE_TABLE_OPS = 9  # the cos and sin tables of a stack's pass (`rope_tables`), where a learned table costs 2 (slice, add)


def rotation_kernels(values: int) -> list[tuple]:
    """One rotation's kernels over `values` values (supernet/attention/rope.py `rotate`): the negated
    half, the concatenation, two products with the tables and their sum."""
    return [("ew", values), ("ew", 2 * values), ("ew", 2 * values), ("ew", 2 * values), ("ew", 3 * values)]


# The order of registration is the order of one-hot features in every encoding: append, never reorder.
ATTENTION_TYPES: dict[str, AttentionType] = {}


def register(cls: type[AttentionType]) -> type[AttentionType]:
    """Class decorator: declares an attention type to the space (one instance, keyed by its name)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute `name` to be registered as an attention type")
    if name in ATTENTION_TYPES and type(ATTENTION_TYPES[name]) is not cls:
        raise KeyError(f"attention type {name!r} is registered twice")
    ATTENTION_TYPES[name] = cls()
    return cls


def unregister(name: str) -> None:
    """Removes a type (a test's or a plugin's toy); the built-in five stay in their order."""
    ATTENTION_TYPES.pop(name, None)


def grouped_ops(layer: "Layer") -> int:
    """The two ops that expand grouped K/V heads to the query heads, where a kernel does."""
    return 2 if layer.kv_heads != layer.heads else 0
