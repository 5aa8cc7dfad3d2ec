"""The preview supervisor: the only process that runs customer code (npm, astro dev/build).

It runs in its own container of the editor pod under its own uid, with no secret in its
environment or files and no service-account token. The editor drives it over loopback HTTP
(`client.SupervisorClient`); it serves the previews router itself.
"""
