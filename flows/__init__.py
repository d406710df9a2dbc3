"""Deployable flows: thin compositions of the actions, one entrypoint per file."""
