"""Reads of the trajectories app that depend on who asks, one module per area."""
