"""Test servers that asyncrawl's tests, demo and benchmarks share: loopback only."""

from .faults import Arrival, FaultPlan, FaultServer, ItemContext

__all__ = [
    "Arrival",
    "FaultPlan",
    "FaultServer",
    "ItemContext",
]
