"""The gateway: the one public entry for previews (routing, wake on visit, signed links)."""
