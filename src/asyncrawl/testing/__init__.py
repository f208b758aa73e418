"""Test servers that asyncrawl's tests, demo and benchmarks share: loopback only."""
