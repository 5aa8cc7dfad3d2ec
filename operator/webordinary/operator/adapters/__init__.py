"""Thin I/O adapters: the Kubernetes API and SQS."""
