"""The credential proxy: the one process of an editor pod that holds the model key and git token.

It runs in its own container under its own uid. The Claude Code CLI talks to it as its API base
URL with a pod-local placeholder key; git asks it for credentials per request through a
credential helper. It forwards only to the configured API host, answers git credentials only
for the configured git host, and meters tokens.
"""
