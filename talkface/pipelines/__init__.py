"""Pipelines: orchestration of the stages, one module per command (no models or losses here)."""
