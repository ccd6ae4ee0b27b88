"""The standalone SubTransformer: plain PyTorch modules of exactly one arch's shapes, no elastic
ops, loadable with one call from a folder (config.json + model.safetensors) without the supernet.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from space import Arch
from space.files import atomic_path, atomic_write_text
from space.errors import UserError
from supernet import functional
from supernet.attention import get_kernel
from supernet.modules import BlockParams, StackParams, init_shared, init_stack, shared_embedding

if TYPE_CHECKING:
    from supernet.card import ModelCard


class SubTransformer(nn.Module):
    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        hd = arch.head_dim
        enc_d = arch.encoder.embed if arch.encoder else None
        shared = shared_embedding(arch.vocab_size, {name: stack.embed for name, stack in arch.stacks})
        if shared is not None:
            self.embed = shared  # (vocab, max(encoder embed, decoder embed)); each stack its first columns
        for name, stack in arch.stacks:
            blocks = []
            for layer in stack.layers:
                extras = {layer.attn: get_kernel(layer.attn).extra_shapes(
                    layer.heads, hd, arch.max_len, layer.window or layer.proj_len)}
                cross = (layer.cross_heads * hd, enc_d) if layer.cross_layers is not None else None
                blocks.append(BlockParams(stack.embed, layer.heads * hd, layer.kv_heads * hd, layer.ffn, extras, cross))
            self.add_module(name, StackParams(arch.vocab_size, arch.max_len, stack.embed, blocks, tok=shared is None,
                                              learned_positions=arch.positions == "learned", classes=arch.classes))
        self._prepared: dict[str, Any] | None = None  # the weights at the arch's precision, made once

    def reset_parameters(self, seed: int = 0) -> "SubTransformer":
        """A fresh initialisation (training from scratch), the same scheme as the supernet's."""
        g = torch.Generator().manual_seed(seed)
        for name, stack in self.arch.stacks:
            init_stack(getattr(self, name), stack.depth, g)
        if hasattr(self, "embed"):
            init_shared(self.embed, g)
        return self

    def weights(self) -> dict[str, Any]:
        """Its fp32 parameters in the layout `functional.forward` reads."""
        out = {name: getattr(self, name).own() for name, _ in self.arch.stacks}
        if hasattr(self, "embed"):
            for name, stack in self.arch.stacks:
                out[name]["tok.weight"] = self.embed.weight[:, :stack.embed]
        return out

    def run_weights(self) -> dict[str, Any]:
        """The weights it runs on: fp32 while training, else at its arch's precision (prepared once,
        again after any change of its parameters)."""
        if self.arch.precision == "fp32" or self.training:
            return self.weights()
        if self._prepared is None:
            from supernet.precision import prepare
            self._prepared = prepare(self.weights(), self.arch.precision)
        return self._prepared

    def train(self, mode: bool = True) -> "SubTransformer":
        self._prepared = None
        return super().train(mode)

    def load_state_dict(self, *args: Any, **kw: Any):
        self._prepared = None
        return super().load_state_dict(*args, **kw)

    def _apply(self, fn, *args: Any, **kw: Any):  # .to(device), .float(): prepared weights must follow
        self._prepared = None
        return super()._apply(fn, *args, **kw)

    def active_weights(self, arch: Arch) -> dict[str, Any]:
        """The supernet's interface, for tools that score either (the Evaluator): only its own arch,
        fp32 (the scorer prepares the arch's precision)."""
        if arch != self.arch:
            raise UserError(f"this SubTransformer is arch {self.arch.id}, not {arch.id}")
        return self.weights()

    def forward(self, tokens: torch.Tensor, **kw: Any) -> torch.Tensor:
        return functional.forward(self.arch, self.run_weights(), tokens, **kw)


def _flatten(weights: dict[str, Any]) -> dict[str, torch.Tensor]:
    flat = {}
    for stack, w in weights.items():
        for name, t in w.items():
            if name == "layers":
                for i, block in enumerate(t):
                    flat.update({f"{stack}.layers.{i}.{n}": p for n, p in block.items()})
            else:
                flat[f"{stack}.{name}"] = t
    return flat


def extract(supernet: nn.Module, arch: Arch) -> SubTransformer:
    """A standalone copy of `arch` with the supernet's weights (the same slices its forward uses)."""
    sub = SubTransformer(arch)
    flat = _flatten(supernet.active_weights(arch))
    if hasattr(sub, "embed"):  # the shared table: the widest stack's slice holds both
        for name, _ in arch.stacks:
            flat.pop(f"{name}.tok.weight")
        flat["embed.weight"] = supernet.embed.weight[:, :sub.embed.weight.shape[1]]
    with torch.no_grad():
        sub.load_state_dict({n: t.detach().clone() for n, t in flat.items()}, strict=True)
    return sub.to(next(supernet.parameters()).device)


def save(model: SubTransformer, folder: str | Path, card: "ModelCard | None" = None) -> Path:
    """Writes model.safetensors, config.json (the typed card) and README.md; the config last, so a
    folder with a config is whole."""
    from supernet.card import ModelCard, render
    from supernet.precision import to_storage
    folder = Path(folder)
    state = {n: t.detach().cpu().contiguous() for n, t in model.state_dict().items()}
    params = sum(t.numel() for t in state.values())
    tensors = {n: t.contiguous() for n, t in to_storage(state, model.arch.precision).items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))
    card = (card or ModelCard(arch=model.arch, params=params)).replace(arch=model.arch, params=params)
    atomic_write_text(folder / "README.md", render(card))
    card.write(folder / "config.json")
    return folder


def load(folder: str | Path, map_location: str | torch.device = "cpu") -> SubTransformer:
    """One call: the folder `save` (or `nas export`) wrote -> a ready SubTransformer in eval mode,
    with its card as `model.card`."""
    from supernet.card import ModelCard
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{folder}: not an exported SubTransformer (no config.json); export one with `nas export`")
    card = ModelCard.read(cfg_path)
    model = SubTransformer(card.arch)
    from safetensors import SafetensorError

    from supernet.precision import from_storage
    try:
        model.load_state_dict(from_storage(load_file(str(folder / "model.safetensors"), device=str(map_location))),
                              strict=True)
    except (OSError, RuntimeError, ValueError, SafetensorError) as e:
        raise UserError(f"{folder / 'model.safetensors'}: missing or not the weights of {cfg_path}'s arch "
                        f"({str(e).splitlines()[0][:100]}); export the model again") from None
    model.card, model.folder = card, folder
    return model.eval()
