"""Search strategies under a latency budget behind one ask/tell interface, a resumable driver, and
the Optuna journal that records every trial (for optuna-dashboard).

    from nas.search import run_search, make_searcher, STRATEGIES, parse_duration
"""
from nas.search.base import (REUSED, STRATEGIES, InfeasibleBudget, Result, SearchOptions, Searcher, make_searcher,
                             resolve_options, strategy_class)
from nas.search.budget import Budget, format_duration, parse_duration

# importing a strategy registers it; this order is the order users see
from nas.search import random_search, evolution, hat, tpe, nsga2  # noqa: E402,F401  isort: skip
from nas.search.driver import SearchResult, check_reachable, run_search  # noqa: E402
from nas.search.fidelity import Fidelity  # noqa: E402

__all__ = ["Budget", "REUSED", "STRATEGIES", "InfeasibleBudget", "Result", "SearchOptions", "Searcher", "make_searcher",
           "resolve_options", "strategy_class", "format_duration", "parse_duration", "SearchResult",
           "check_reachable", "run_search", "Fidelity"]
