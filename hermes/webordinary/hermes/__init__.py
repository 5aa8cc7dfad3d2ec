"""Hermes: turns emails into edit commands and results into reply emails."""
