"""Crafted hostile files (NIfTI, HDF5, CSV/TSV, JSON) and a memory-measuring probe.

``crafted.py`` builds every file from the tiny sample at test time (nothing
binary is checked in); ``probe.py`` plants each one in a data directory and
calls the public API on it in a child process, recording the exception class
and how many bytes the call allocated; ``test_crafted.py`` asserts both.
"""
