"""The generic run layer: jobs, resumable runs, continuation tokens, leases, summary merging.

- :mod:`.job`: :class:`~asyncrawl.runs.job.Job`, :class:`~asyncrawl.runs.job.Plan` and the
  registry (:func:`~asyncrawl.runs.job.register_job`, :func:`~asyncrawl.runs.job.get_job`).
- :mod:`.run`: :func:`~asyncrawl.runs.run.run_resumable`, one part of a run.
- :mod:`.continuation`: signed, versioned continuation tokens (spill to the store).
- :mod:`.signing`: the keys that sign them (never the upstream's key).
- :mod:`.lease`: one invocation per run id at a time.
- :mod:`.merge`: the one summary-merge rule; standard library only (the boto3-only caller
  imports it), as this package's ``__init__`` imports nothing else eagerly.
"""

from __future__ import annotations
