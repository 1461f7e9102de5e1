"""Sparse parity as an Observatory task plugin: ``schema`` (server and workers) and ``builder``
(workers only)."""
