"""Views of the trajectories app, one module per area (runs, registries, goals)."""
