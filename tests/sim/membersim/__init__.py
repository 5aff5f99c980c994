"""Whole-member deterministic simulation (the full design is written below once in place)."""
from membersim.failure import SimFailure
from membersim.options import Faults, Options
from membersim.simulation import run_seed

__all__ = ["Faults", "Options", "SimFailure", "run_seed"]
