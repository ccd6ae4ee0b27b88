"""The simplest classifiers a Transformer must beat, scored on the same texts as the model.

- majority: the training split's most frequent label for every text; its loss is that of
  predicting the training split's label frequencies.
- n-gram: TF-IDF over character 1-4-grams (sublinear counts) and a multinomial logistic regression
  (scikit-learn), trained on every training window, its regularisation chosen on the validation
  windows (selection uses validation), then scored on the texts asked for.
Accuracy is the share of texts whose most likely label is theirs; loss is the mean cross-entropy in
nats per text, as the model's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

REGULARISATION = (0.3, 1.0, 3.0, 10.0)  # logistic regression's C, chosen on validation


@dataclass(frozen=True)
class BaselineScore:
    name: str
    accuracy: float
    loss: float


def texts_of(batches: Iterable, tokenizer) -> tuple[list[str], np.ndarray]:
    """The texts and labels of classification batches ({"tokens", "keep"}, labels)."""
    texts, labels = [], []
    for x, y in batches:
        for row, keep in zip(x["tokens"], x["keep"]):
            texts.append(tokenizer.decode(row[keep].tolist()))
        labels += y.tolist()
    return texts, np.asarray(labels)


def _loss(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean())


def classify_baselines(train: tuple[Sequence[str], np.ndarray], val: tuple[Sequence[str], np.ndarray],
                       scored: tuple[Sequence[str], np.ndarray], classes: int) -> list[BaselineScore]:
    """Both baselines, fitted on `train` (texts, labels), the n-gram's C chosen on `val`, scored on `scored`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    (tr_x, tr_y), (va_x, va_y), (sc_x, sc_y) = train, val, scored
    freq = np.bincount(tr_y, minlength=classes) / len(tr_y)
    majority = BaselineScore("majority class (train)", float((sc_y == freq.argmax()).mean()),
                             _loss(np.tile(freq, (len(sc_y), 1)), sc_y))
    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 4), sublinear_tf=True, min_df=2, max_features=200_000)
    a, v, s = vec.fit_transform(tr_x), vec.transform(va_x), vec.transform(sc_x)
    fits = [LogisticRegression(C=c, max_iter=2000).fit(a, tr_y) for c in REGULARISATION]
    best = max(fits, key=lambda m: (m.score(v, va_y), -_loss(_full(m, v, classes), va_y)))
    probs = _full(best, s, classes)
    ngram = BaselineScore(f"char 1-4-gram logistic regression (C={best.C:g})",
                          float((probs.argmax(1) == sc_y).mean()), _loss(probs, sc_y))
    return [majority, ngram]


def _full(model, x, classes: int) -> np.ndarray:
    """Probabilities over every label (a label absent from training gets none)."""
    out = np.zeros((x.shape[0], classes))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def supernet_baselines(record, scored_batches: Iterable) -> list[BaselineScore]:
    """Both baselines for a classifier supernet's data (its record), scored on `scored_batches`."""
    from supernet.corpus.labelled import load_labelled_corpus, windows
    from supernet.corpus.tokenizer import tokenizer_from_dict
    tok = tokenizer_from_dict(record.tokenizer)
    corpus = load_labelled_corpus(record.data, tok)
    length = record.train.seq_len

    def split(name: str) -> tuple[list[str], np.ndarray]:
        w = windows(getattr(corpus, name), length)
        return [tok.decode(p) for p, _, _ in w], np.asarray([label for _, label, _ in w])
    return classify_baselines(split("train"), split("val"), texts_of(scored_batches, tok), record.space["classes"])
