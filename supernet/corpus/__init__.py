"""Corpora for the two hwnas tasks: byte-level language modelling on Shakespeare, and spelling
translation from the First Folio to modern English, aligned line by line by our own aligner."""

from .align import AlignedPair, align_play
from .text import CorpusError, LMBatches, TextCorpus, load_text_corpus, shakespeare_dir
from .tokenizer import ByteTokenizer

__all__ = [
    "AlignedPair", "ByteTokenizer", "CorpusError", "LMBatches", "ParallelCorpus", "TextCorpus",
    "align_play", "load_parallel_corpus", "load_text_corpus", "shakespeare_dir",
]


def __getattr__(name: str):
    # `parallel` is imported on first use, not here: `python -m supernet.corpus.parallel` would
    # otherwise find it already imported and warn that it may run twice
    if name in ("ParallelCorpus", "load_parallel_corpus"):
        from . import parallel
        return getattr(parallel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
