"""Serving: load runs (or ensembles) once and predict photos, eval folders and arrays."""
