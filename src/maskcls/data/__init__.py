"""Data: read a dataset into one table, correct it, split it by person, decode photos, prepare it once."""
