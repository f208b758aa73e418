"""AWS adapters: the Lambda handler, its event and continuation, and the safe caller.

Importing this package must not import aiohttp or aioboto3: the caller runs with boto3 alone.
"""
