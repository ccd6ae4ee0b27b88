"""Checkpoints that never run code when read.

A PyTorch pickle (`torch.save`, read with `weights_only=False`) can run arbitrary code when loaded,
so a supernet someone shares must not be one. Here a checkpoint is ONE safetensors file: tensors
(the model's, and when training resumes from it the optimizer's and the data generator's) plus
a JSON header that holds the typed `SupernetRecord` and the plain training state (step, the arch
sampler's RNG state, the optimizer's hyper-parameters). Written atomically: a killed process
leaves the old checkpoint or the new one.

    python -m supernet.checkpoint convert DIR      # an old supernet.pt -> supernet.safetensors
    python -m supernet.checkpoint half DIR OUT     # weights only, float16: the file to ship
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from space.files import atomic_path
from space.errors import UserError
from space.record import Record, RecordError
from supernet.config import TrainConfig
from supernet.corpus.tokenizer import ByteTokenizer

FILE = "supernet.safetensors"
LEGACY = "supernet.pt"  # the pickle format of hwnas 0.1: refused
_MODEL, _OPTIM, _RNG = "model.", "optim.", "rng."


@dataclass(frozen=True)
class SupernetRecord(Record):
    """What a trained (or training) supernet is: its space, how it was trained, on what, how far."""

    FORMAT = "hwnas-supernet"
    VERSION = 1
    WHAT = "supernet record"
    HINT = "train a supernet with `nas train-supernet`"

    space: dict[str, Any]  # SearchSpace.to_dict()
    train: TrainConfig
    task: str  # "lm" | "translation"
    data: Any  # None (the embedded corpus), a path, or [source file, target file]
    tokenizer: dict[str, Any]
    step: int  # optimizer steps done
    log: tuple[dict[str, Any], ...] = ()  # one row per evaluation: step, loss, lr, val_largest, ...
    dtype: str = "float32"  # of the stored weights (a shipped supernet may be float16)

    @classmethod
    def _decode(cls, body: dict[str, Any], where: str) -> dict[str, Any]:
        return {**body, "train": TrainConfig.from_dict(body["train"], f"{where}: train"),
                "log": tuple(body.get("log", ()))}

    @property
    def finished(self) -> bool:
        return self.step >= self.train.steps

    def search_space(self):
        from space import space_from_dict
        return space_from_dict(self.space, "supernet record: space")


@dataclass
class TrainingState:
    """What resuming needs beyond the weights."""

    optimizer: dict[str, Any] | None = None  # an optimizer's state_dict
    arch_rng: Any = None  # random.Random state
    data_gen: torch.Tensor | None = None  # torch.Generator state
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-plain: e.g. the training losses so far


# ---- the file codec ------------------------------------------------------------------------------

def _pack_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, plain = {}, {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIM}{index}.{key}"] = value
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": plain}


def _unpack_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        index, key = name[len(_OPTIM):].split(".", 1)
        state.setdefault(int(index), {})[key] = t
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def write_checkpoint(path: str | Path, model: dict[str, torch.Tensor], header: dict[str, Any],
                     training: TrainingState | None = None, dtype: torch.dtype | None = None) -> Path:
    """Atomically writes model tensors (cast to `dtype` if given), a JSON header and, optionally,
    the training state, as one safetensors file."""
    from safetensors.torch import save_file
    tensors = {f"{_MODEL}{n}": (t.to(dtype) if dtype is not None and t.is_floating_point() else t)
               .detach().cpu().contiguous() for n, t in model.items()}
    meta = {"header": json.dumps(header)}
    if training is not None:
        plain: dict[str, Any] = {"extra": training.extra}
        if training.optimizer is not None:
            opt_tensors, plain["optimizer"] = _pack_optimizer(training.optimizer)
            tensors.update({n: t.detach().cpu().contiguous() for n, t in opt_tensors.items()})
        if training.arch_rng is not None:
            plain["arch_rng"] = training.arch_rng
        if training.data_gen is not None:
            tensors[f"{_RNG}data_gen"] = training.data_gen.cpu().contiguous()
        meta["training"] = json.dumps(plain)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return Path(path)


def read_checkpoint(path: str | Path, training: bool = False
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any], TrainingState | None]:
    """(model tensors, header, training state if asked and present). Reads safetensors only: a
    pickle, or anything else, is refused with one line and never executed."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            keys = list(f.keys())
            model = {k[len(_MODEL):]: f.get_tensor(k) for k in keys if k.startswith(_MODEL)}
            rest = {k: f.get_tensor(k) for k in keys if training and not k.startswith(_MODEL)}
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise RecordError(f"{path}: not a hwnas checkpoint (not a safetensors file: {str(e).splitlines()[0][:100]}); "
                          f"hwnas reads only safetensors checkpoints, which cannot run code when loaded") from None
    try:
        header = json.loads(meta["header"])
    except (KeyError, json.JSONDecodeError):
        raise RecordError(f"{path}: a safetensors file without a hwnas header; not a hwnas checkpoint") from None
    state = None
    if training and "training" in meta:
        plain = json.loads(meta["training"])
        state = TrainingState(extra=plain.get("extra", {}))
        opt = {k: t for k, t in rest.items() if k.startswith(_OPTIM)}
        if "optimizer" in plain:
            state.optimizer = _unpack_optimizer(opt, plain["optimizer"])
        if "arch_rng" in plain:
            version, internal, gauss = plain["arch_rng"]
            state.arch_rng = (version, tuple(internal), gauss)
        state.data_gen = rest.get(f"{_RNG}data_gen")
    return model, header, state


# ---- supernets -----------------------------------------------------------------------------------

def checkpoint_path(folder: str | Path) -> Path:
    return Path(folder) / FILE


def has_supernet(folder: str | Path) -> bool:
    return checkpoint_path(folder).is_file()


def _refuse_legacy(folder: Path) -> None:
    if (folder / LEGACY).is_file() and not (folder / FILE).is_file():
        raise UserError(f"{folder / LEGACY}: a supernet in hwnas 0.1's pickle format, which can run code when "
                        f"loaded and so is no longer read; if you trust the file, convert it with "
                        f"`python -m supernet.checkpoint convert {folder}`, else retrain it")


def read_record(folder: str | Path) -> SupernetRecord:
    """The record alone (no weights read): cheap, for checks before long work."""
    folder = Path(folder)
    _refuse_legacy(folder)
    path = checkpoint_path(folder)
    if not path.is_file():
        raise UserError(f"{folder}: no trained supernet here ({FILE} missing); "
                        f"train one with `nas train-supernet --out {folder}`")
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            header = json.loads((f.metadata() or {})["header"])
    except (SafetensorError, OSError, ValueError, KeyError):
        read_checkpoint(path)  # raises the one-line reason
        raise
    return SupernetRecord.from_dict(header, str(path))


def save_supernet(folder: str | Path, model: torch.nn.Module, record: SupernetRecord,
                  training: TrainingState | None = None, dtype: torch.dtype | None = None) -> Path:
    if dtype is not None:
        record = record.replace(dtype=str(dtype).removeprefix("torch."))
    return write_checkpoint(checkpoint_path(folder), model.state_dict(), record.to_dict(), training, dtype)


def load_supernet(folder: str | Path, training: bool = False):
    """(SuperTransformer in eval mode with float32 weights, its record[, training state])."""
    from supernet.model import SuperTransformer
    folder = Path(folder)
    record = read_record(folder)
    tensors, header, state = read_checkpoint(checkpoint_path(folder), training)
    model = SuperTransformer(record.search_space(), adapters=record.train.type_adapters)
    try:
        model.load_state_dict({n: t.float() if t.is_floating_point() else t for n, t in tensors.items()})
    except RuntimeError as e:
        raise RecordError(f"{checkpoint_path(folder)}: its weights do not fit its space "
                          f"({str(e).splitlines()[0][:120]}); the file is damaged") from None
    model.eval()
    return (model, record, state) if training else (model, record)


# ---- conversion and shipping -----------------------------------------------------------------------

def convert_legacy(folder: str | Path) -> Path:
    """Rewrites an hwnas 0.1 `supernet.pt` as `supernet.safetensors`. The pickle is read with
    torch's restricted unpickler (`weights_only=True`): plain data and tensors only, no code."""
    folder = Path(folder)
    try:
        ck = torch.load(folder / LEGACY, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (the restricted unpickler refuses with many types)
        raise UserError(f"{folder / LEGACY}: cannot be read safely ({type(e).__name__}); retrain it") from None
    meta = ck["meta"]
    record = SupernetRecord(space=ck["space"], train=TrainConfig.from_dict(ck["train"]), task=meta.get("task", "lm"),
                            data=meta.get("data"), tokenizer=ByteTokenizer().to_dict(), step=ck["step"],
                            log=tuple(ck["log"]))
    opt = ck["optimizer"]
    training = TrainingState(optimizer=opt, arch_rng=list(ck["arch_rng"]), data_gen=ck["data_gen"])
    return write_checkpoint(checkpoint_path(folder), ck["model"], record.to_dict(), training)


def ship(folder: str | Path, out: str | Path, space=None) -> Path:
    """The weights alone in float16 (half the size, no optimizer state), with the record: what a
    package ships. Loading casts back to float32.

    `space`: today's definition of the supernet's space, adopted in the shipped record when it
    differs from the trained one only in what carries no weights (a dimension such as `precision`,
    applied at evaluation time): the weights must load strictly into a supernet of `space`."""
    from supernet.model import SuperTransformer
    model, record = load_supernet(folder)
    if space is not None and space.to_dict() != record.space:
        try:
            SuperTransformer(space, adapters=record.train.type_adapters).load_state_dict(model.state_dict())
        except RuntimeError as e:
            raise UserError(f"{folder}: its weights do not fit today's {space.name} space "
                            f"({str(e).splitlines()[0][:120]}); retrain it") from None
        record = record.replace(space=space.to_dict())
    return save_supernet(out, model, record, dtype=torch.float16)


def random_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


if __name__ == "__main__":
    import sys
    if len(sys.argv) >= 3 and sys.argv[1] == "convert":
        print(convert_legacy(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "half":
        print(ship(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__.split("\n\n")[-1])
