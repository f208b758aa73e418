"""pytest configuration shared by every test module."""
