"""Test servers that asyncrawl's tests, demo and benchmarks share: loopback only.

- :class:`FaultServer` answers anything, misbehaving as its :class:`FaultPlan` says, the same
  way for the same ``(seed, item, attempt)``.
- :class:`OpenDartStandIn` is OpenDART's API on top of it (:data:`DEMO_COMPANIES`,
  :func:`realistic_plan` for the demo).
- :func:`run_server_process` runs either in a child process, for benchmarks.
- :class:`FaultProxy` sits in front of any loopback server (moto's S3, say) and stalls, slows,
  drops or answers 500 on demand.
"""

from .faults import Arrival, FaultPlan, FaultServer, ItemContext
from .opendart import DEMO_COMPANIES, OpenDartStandIn, realistic_plan
from .process import run_server_process
from .proxy import FaultProxy

__all__ = [
    "DEMO_COMPANIES",
    "Arrival",
    "FaultPlan",
    "FaultProxy",
    "FaultServer",
    "ItemContext",
    "OpenDartStandIn",
    "realistic_plan",
    "run_server_process",
]
