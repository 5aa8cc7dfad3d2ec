"""The EditEnvironment operator (kopf): reconciles each environment into queues and a workload.

Run: ``python -m webordinary.operator`` (settings: ``OperatorSettings``, WEBORDINARY_OPERATOR_*).
Modules: ``settings`` (every knob), ``crd`` (the CRD from the contracts models), ``builders``
(pure child manifests), ``status`` and ``lifecycle`` (pure conditions and sleep/wake),
``adapters`` (Kubernetes REST, SQS), ``reconcile`` (parse -> observe -> plan -> apply -> report),
``handlers`` (kopf registrations), ``metrics`` (Prometheus).
"""
