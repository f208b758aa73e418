"""Shared test helpers (fixtures live beside the tests that use them)."""
