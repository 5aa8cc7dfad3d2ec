"""Local substrate: the Kubernetes API emulator, AWS (moto), a Messages API stand-in, `./dev up`."""
