"""An exported SubTransformer as an ONNX graph, for ONNX Runtime.

The graph is the forward pass: tokens (1, T) -> logits (1, T, vocab) for a language model, and
(src (1, S), tokens (1, T)) -> logits for an encoder-decoder, for the lengths of the model's
workload (static shapes: the kernels choose their path by the sequence length, e.g. the window's
blocks, so a graph holds one length; a causal model reads a shorter input padded at the end). The
decoding cache is not part of the graph: a generation with ONNX Runtime re-runs the prefix.
An int8 model is exported in fp32 and then quantized by ONNX Runtime's own dynamic quantization
(int8 weights, activations quantized per call: the scheme of supernet/precision.py, its kernels);
bf16/fp16 models are exported in fp32 (ONNX Runtime's CPU kernels lack most half-precision ops).
Every export is checked against PyTorch on a fixed input; the largest absolute difference of the
logits is returned and kept in the model card.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from space.errors import UserError

ONNX_FILE = "model.onnx"
OPSET = 18


@contextlib.contextmanager
def _quiet():
    """The exporter and the quantizer talk (warnings, loggers, prints): not to our users."""
    loggers = [logging.getLogger(), logging.getLogger("torch.onnx"), logging.getLogger("torch")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _require_ort():
    try:
        import onnxruntime  # noqa: F401
        import onnx  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs onnx and onnxruntime: pip install 'hwnas[onnx]'") from None


class _LM(torch.nn.Module):
    """The forward pass with tensor inputs only (what an ONNX graph takes): tokens -> logits."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)


class _Seq2Seq(_LM):
    def forward(self, src: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens, src=src)


def _Graph(model) -> torch.nn.Module:
    return _Seq2Seq(model) if model.arch.kind == "encoder-decoder" else _LM(model)


def example_inputs(arch, length: int = 16, seed: int = 0, batch: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    top = min(arch.vocab_size - 3, 256)
    tokens = torch.randint(0, top, (batch, min(length, arch.max_len)), generator=g)
    if arch.kind == "encoder-decoder":
        return torch.randint(0, top, (batch, min(length, arch.max_len)), generator=g), tokens
    return (tokens,)


def export_graph(model, path: str | Path, length: int = 64, batch: int = 1) -> Path:
    """Writes the fp32 forward graph of `model` (a SubTransformer, any precision) to `path`."""
    _require_ort()
    from supernet.subnet import SubTransformer
    fp32 = SubTransformer(model.arch.with_precision("fp32"))
    fp32.load_state_dict(model.state_dict())
    fp32.eval()
    inputs = example_inputs(model.arch, length, batch=batch)
    names = ["src", "tokens"] if model.arch.kind == "encoder-decoder" else ["tokens"]
    buf = io.BytesIO()
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(_Graph(fp32), inputs, input_names=names, output_names=["logits"],
                                    opset_version=OPSET, dynamo=True)
        program.save(buf) if hasattr(program, "save") else buf.write(program)
    from space.files import atomic_write_bytes
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


@dataclass(frozen=True)
class OnnxExport:
    path: Path
    precision: str  # of the graph: fp32 or int8
    length: int  # the sequence length the graph takes
    max_abs_diff: float  # of the logits, against PyTorch running the model at its precision
    opset: int = OPSET

    def to_dict(self) -> dict:
        return {"file": self.path.name, "precision": self.precision, "length": self.length,
                "max_abs_diff": self.max_abs_diff, "opset": self.opset}


def export_onnx(model, folder: str | Path, length: int = 64, threads: int | None = None, batch: int = 1) -> OnnxExport:
    """`folder/model.onnx`: the model's forward graph for sequences of `length` (int8 models
    quantized by ONNX Runtime), checked against PyTorch."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ONNX_FILE
    length = min(length, model.arch.max_len)
    precision = "int8" if model.arch.precision == "int8" else "fp32"
    if precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        fp32_path = folder / ".model.fp32.onnx"
        export_graph(model, fp32_path, length, batch)
        with _quiet():
            quantize_dynamic(str(fp32_path), str(path), weight_type=QuantType.QInt8, per_channel=True)
        fp32_path.unlink()
    else:
        export_graph(model, path, length, batch)
    return OnnxExport(path, precision, length, parity(model, path, threads, length, batch))


def session(path: str | Path, threads: int | None = None):
    _require_ort()
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess, arch, inputs: tuple[torch.Tensor, ...]):
    names = ["src", "tokens"] if arch.kind == "encoder-decoder" else ["tokens"]
    return sess.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0]


def parity(model, path: str | Path, threads: int | None = None, length: int = 64, batch: int = 1) -> float:
    """Largest |logit difference| between ONNX Runtime and PyTorch on a fixed input (another
    than the export traced with)."""
    model.eval()
    inputs = example_inputs(model.arch, length, seed=1, batch=batch)
    with torch.inference_mode():
        want = _Graph(model)(*inputs).float().numpy()
    got = run(session(path, threads), model.arch, inputs)
    return float(abs(got - want).max())
