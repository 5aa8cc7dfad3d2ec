"""Where the API server is and how to prove who we are: in-cluster, kubeconfig or a URL."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import yaml

SERVICE_ACCOUNT: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Config:
    """Connection settings. A `token_file` is read again whenever it changes (projected
    service-account tokens rotate: the kubelet rewrites the file, hourly by default)."""

    server: str
    token: str | None = None
    token_file: Path | None = None
    scheme: str = "Bearer"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    ca_data: str | None = None  # PEM or base64 of PEM (kubeconfig's certificate-authority-data)
    cert_file: Path | None = None
    key_file: Path | None = None
    cert_data: str | None = None
    key_data: str | None = None
    insecure: bool = False

    @classmethod
    def from_url(cls, url: str, token: str | None = None) -> Config:
        """An explicit server (local runs against the emulator)."""
        return cls(server=url.rstrip("/"), token=token)

    @classmethod
    def in_cluster(cls, account: Path = SERVICE_ACCOUNT) -> Config:
        """The pod's service account: the API server from the environment, its CA, its token."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise RuntimeError("not in a cluster (no KUBERNETES_SERVICE_HOST)")
        host = f"[{host}]" if ":" in host else host
        return cls(server=f"https://{host}:{port}", token_file=account / "token",
                   ca_file=account / "ca.crt")

    @classmethod
    def from_kubeconfig(cls, path: Path | None = None, context: str | None = None) -> Config:
        """A kubeconfig's context (default: $KUBECONFIG's first file or ~/.kube/config, its
        current context): server, CA, token/tokenFile, client certificate or basic auth.
        exec and auth-provider plugins are not run: use a token or a certificate."""
        if path is None:
            first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
            path = Path(first) if first else Path.home() / ".kube" / "config"
        doc: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        name = context or doc.get("current-context")
        ctx = _named(doc, "contexts", name, "context")
        cluster = _named(doc, "clusters", ctx.get("cluster"), "cluster")
        user = _named(doc, "users", ctx.get("user"), "user") if ctx.get("user") else {}
        if "exec" in user or "auth-provider" in user:
            raise RuntimeError(f"kubeconfig user {ctx.get('user')!r} needs a credential plugin, "
                               "which this client does not run: use a token or a certificate")
        base = path.parent

        def local(key: str, where: dict[str, Any]) -> Path | None:
            return base / where[key] if where.get(key) else None

        return cls(
            server=str(cluster["server"]).rstrip("/"),
            token=user.get("token"), token_file=local("tokenFile", user),
            username=user.get("username"), password=user.get("password"),
            ca_file=local("certificate-authority", cluster),
            ca_data=cluster.get("certificate-authority-data"),
            cert_file=local("client-certificate", user), key_file=local("client-key", user),
            cert_data=user.get("client-certificate-data"), key_data=user.get("client-key-data"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )

    def with_token(self, token: str) -> Config:
        return replace(self, token=token)

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What aiohttp verifies the server with (False: insecure; True: the system CAs)."""
        if self.insecure:
            return False
        if not self.server.startswith("https:"):
            return True
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(cafile=os.fsdecode(self.ca_file))
        elif self.ca_data:
            context.load_verify_locations(cadata=_pem(self.ca_data).decode())
        cert, key = self.cert_file, self.key_file
        if self.cert_data and self.key_data:
            cert, key = _to_file(self.cert_data), _to_file(self.key_data)
        if cert and key:
            context.load_cert_chain(os.fsdecode(cert), os.fsdecode(key))
        return context


def _named(doc: dict[str, Any], section: str, name: Any, field: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            found: dict[str, Any] = entry.get(field) or {}
            return found
    raise RuntimeError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _pem(data: str | bytes) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return raw if b"-----BEGIN" in raw else base64.b64decode(raw)


def _to_file(data: str | bytes) -> Path:
    """ssl loads client certificates from files only."""
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")  # noqa: SIM115
    with handle:
        handle.write(_pem(data))
    return Path(handle.name)
