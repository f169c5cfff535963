"""The workflow's own logic: the registry of steps and stages, experiment grids, resumable partial work, DVC pulls."""
