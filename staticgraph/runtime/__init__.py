"""Runtimes that execute a planned graph."""
