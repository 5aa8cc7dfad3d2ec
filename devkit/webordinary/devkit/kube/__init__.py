"""The strict Kubernetes API emulator's parts (store, selectors, patches, validation, HTTP)."""
