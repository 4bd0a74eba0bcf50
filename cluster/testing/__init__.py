"""Tooling for users' own test suites (the pytest plugin); never imported by the shared model."""
