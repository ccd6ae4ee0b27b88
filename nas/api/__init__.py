"""The hwnas Python API: the workflow as functions that take typed arguments and return typed
results. The `nas` command is a thin layer over it; notebooks and scripts call it directly.

    from nas import api
    sup = api.train_supernet("lm-shakespeare", preset="quick")
    api.profile("xeon-2vcpu", samples=200)
    run = api.search("xeon-2vcpu", "45ms", supernet=sup.folder)
    model = api.export(run.run_dir, out="model/")
    print(api.generate(model.folder, "ROMEO.\\n"))

Every function that runs for long takes `progress`: True (stderr), False (silent) or a `Progress`.
Bad input raises `UserError` (one line saying what, where and how to fix) before any long work.
See docs/api.md for a walk through it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> module; loaded on first use, so `import nas.api` (and every `nas` command) starts fast and a
# wrong argument is refused before torch, pandas or scikit-learn are even imported
_WHERE = {
    **dict.fromkeys(("ExportResult", "MeasureResult", "RetrainResult", "export", "measure", "retrain"),
                    "nas.api._export"),
    **dict.fromkeys(("HardwareInfo", "Prediction", "PredictorReport", "ProfileResult", "fit_predictor", "hardware",
                     "learned_predictors", "predict", "profile"), "nas.api._latency"),
    **dict.fromkeys(("SILENT", "ConsoleProgress", "Progress", "Silent"), "nas.api.progress"),
    **dict.fromkeys(("DEFAULT_CONFIDENCE", "DEFAULT_ITERATIONS", "DEFAULT_EVAL_BATCHES", "DEFAULT_HURDLE_BATCHES",
                     "DEFAULT_FINAL_BATCHES", "DEFAULT_FINAL_TOP", "SearchOutcome", "SearchPlan", "SearchRequest",
                     "plan_search", "run_planned_search", "search"),
                    "nas.api._search"),
    **dict.fromkeys(("sample_archs",), "nas.api._space"),
    **dict.fromkeys(("ArchScore", "EvalResult", "TrainPlan", "TrainRequest", "TrainResult", "choose_supernet",
                     "default_supernet_dir",
                     "evaluate", "plan_training", "run_training", "shipped_supernet", "supernet_evaluator",
                     "train_supernet"),
                    "nas.api._supernet"),
    **dict.fromkeys(("generate", "translate"), "nas.api._text"),
    **dict.fromkeys(("Arch", "SearchSpace", "UserError", "Workload", "load_archs", "load_space"), "space"),
    "load_supernet": "supernet.checkpoint",
    "ModelCard": "supernet.card",
    "SupernetRecord": "supernet.checkpoint",
    "SearchRun": "nas.search.report",
}
_RENAMED = {"load_model": ("supernet.subnet", "load")}

__all__ = sorted([*_WHERE, *_RENAMED])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    elif name in _RENAMED:
        module, attr = _RENAMED[name]
        value = getattr(importlib.import_module(module), attr)
    else:
        raise AttributeError(f"module 'nas.api' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from nas.api._export import ExportResult, MeasureResult, RetrainResult, export, measure, retrain  # noqa: F401
    from nas.api._latency import (HardwareInfo, Prediction, PredictorReport, ProfileResult, fit_predictor,  # noqa: F401
                                 hardware, learned_predictors, predict, profile)
    from nas.api.progress import SILENT, ConsoleProgress, Progress, Silent  # noqa: F401
    from nas.api._search import (SearchOutcome, SearchPlan, SearchRequest, plan_search,  # noqa: F401
                                 run_planned_search, search)
    from nas.api._space import sample_archs  # noqa: F401
    from nas.api._supernet import (ArchScore, EvalResult, TrainPlan, TrainRequest, TrainResult,  # noqa: F401
                                  choose_supernet,
                                  default_supernet_dir, evaluate, plan_training, run_training, supernet_evaluator,
                                  train_supernet)
    from nas.api._text import generate, translate  # noqa: F401
    from nas.search.report import SearchRun  # noqa: F401
    from space import Arch, SearchSpace, UserError, Workload, load_archs, load_space  # noqa: F401
    from supernet.card import ModelCard  # noqa: F401
    from supernet.checkpoint import SupernetRecord, load_supernet  # noqa: F401
    from supernet.subnet import load as load_model  # noqa: F401
