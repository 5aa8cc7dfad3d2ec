"""The EditEnvironment operator (kopf): reconciles each environment into queues and a workload."""
