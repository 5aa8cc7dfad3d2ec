"""Contracts shared by the operator, Hermes and the editor: models and naming, no I/O."""
