"""The Lambda's continuation tokens: the run layer's (:mod:`asyncrawl.runs.continuation`).

Kept as an import path for round-1 code; the tokens are generic (a job's own parameters
travel as opaque JSON) and signed (:mod:`asyncrawl.runs.signing`).
"""

from __future__ import annotations

from ..runs.continuation import (
    MAX_TOKEN_BYTES,
    RUN_ID_PATTERN,
    TOKEN_VERSION,
    ContinuationState,
    ContinuationTooLarge,
    decode,
    encode,
    encode_or_spill,
    peek_run_id,
    resolve,
    spill_key,
)

__all__ = [
    "MAX_TOKEN_BYTES",
    "RUN_ID_PATTERN",
    "TOKEN_VERSION",
    "ContinuationState",
    "ContinuationTooLarge",
    "decode",
    "encode",
    "encode_or_spill",
    "peek_run_id",
    "resolve",
    "spill_key",
]
