"""Activates one deliberately broken build in a Brook server process: only for the mutant harness.

This directory is put on PYTHONPATH, together with BROOK_MUTANT=<name>, by `make chaos-mutants` and
by tests/chaos/test_chaos_mutant.py only; no normal run (make run, brook server, the test suite's
clusters, a deployment) ever has it on its path. Python imports `sitecustomize` at start-up; this one
asks `brook_mutants` to patch the named function as soon as its module is imported.
"""

import os

if os.environ.get("BROOK_MUTANT"):
    import brook_mutants

    brook_mutants.install(os.environ["BROOK_MUTANT"])
