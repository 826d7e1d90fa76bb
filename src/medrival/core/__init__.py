"""Core layer: types, the generic registry, errors, configuration and provenance. Imports nothing heavy."""
