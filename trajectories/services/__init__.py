"""Writes of the trajectories app. Import from the submodules."""
