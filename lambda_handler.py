"""AWS Lambda entry point (``lambda_handler.handler``): a thin adapter over asyncrawl.aws.

See ``asyncrawl.aws.handler`` for the contract: 200 / 206 with a continuation / 400 / 500,
never running longer than ``MAX_SYNC_SECONDS`` (default 240 s, well inside the NAT's 350 s).
"""

from asyncrawl.aws.handler import handler

__all__ = ["handler"]
