"""Whole-member deterministic simulation (see simulation.py; the full design is written below
once the pieces are in place)."""
