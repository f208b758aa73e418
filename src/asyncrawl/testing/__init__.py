"""Test servers that asyncrawl's tests, demo and benchmarks share: loopback only."""

from .faults import Arrival, FaultPlan, FaultServer, ItemContext
from .opendart import DEMO_COMPANIES, OpenDartStandIn, realistic_plan

__all__ = [
    "DEMO_COMPANIES",
    "Arrival",
    "FaultPlan",
    "FaultServer",
    "ItemContext",
    "OpenDartStandIn",
    "realistic_plan",
]
