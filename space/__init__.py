"""The search space: the architecture record, the spaces and their operations, analytic cost."""
from space.arch import ATTENTION_TYPES, KINDS, PRECISIONS, Arch, ArchError, Layer, Stack, load_archs, save_archs
from space.attention import AttentionType
from space.errors import UserError
from space.cost import Cost, PartCost, Workload, analytic_cost
from space.space import SearchSpace, StackSpace, make_rng
from space.space_file import builtin_spaces, load_space, space_from_dict

__all__ = ["UserError", "ATTENTION_TYPES", "KINDS", "PRECISIONS", "Arch", "ArchError", "AttentionType", "Layer", "Stack", "load_archs",
           "save_archs", "Cost", "PartCost", "Workload", "analytic_cost", "SearchSpace", "StackSpace",
           "builtin_spaces", "load_space", "make_rng", "space_from_dict"]
