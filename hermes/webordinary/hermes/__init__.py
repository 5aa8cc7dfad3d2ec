"""Hermes: turns emails into edit commands and results into reply emails.

Entry point: ``python -m webordinary.hermes`` (settings: ``settings.HermesSettings``, env
prefix ``WEBORDINARY_HERMES_``). In-process: ``await app.start(settings)`` returns a
``Running`` (``.hermes``, ``.smtp_port``, ``.metrics_port``, ``await .close()``).

Pure modules: ``mail`` (parse_mail), ``threads`` (thread ids), ``quotes`` (strip_quotes),
``htmltext``, ``auth``, ``routing`` (RoutingConfig, the SRE-edited routing.yaml),
``notifications`` (SES receipt shapes), ``decisions`` (decide: Accept | Reply | Drop),
``commands``, ``environments`` (EditEnvironment body/patches), ``replies``.
I/O: ``adapters`` (kube, aws, smtp), ``journal``, ``service`` (the loops), ``metrics``.
"""
