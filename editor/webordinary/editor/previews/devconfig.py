"""What one session's `astro dev` is started with: pure builders, no I/O.

The customer's astro.config stays untouched: `runner.mjs` calls Astro's `dev()` with the inline
config built here, and Astro merges it over the project's own config. Vite's `base` (not Astro's)
puts every module, asset and the HMR websocket under `/session/{id}/`; Astro's `base` stays `/`,
and `import.meta.env.BASE_URL` is defined to the prefix so that links built from it follow.
Caches go to the session's state directory outside the worktree, so nothing untracked lands in
the customer's repository (Astro 5 still writes `.astro/` into the project root: see
GENERATED_IN_WORKTREE).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from webordinary.editor.previews.routing import session_prefix

RUNNER: Final = Path(__file__).with_name("runner.mjs")
STATE_DIR_NAME: Final = ".previews"
# Written by Astro itself into the project root; the editor should list it in info/exclude.
GENERATED_IN_WORKTREE: Final = (".astro/",)
DEV_ENV: Final = {
    "ASTRO_TELEMETRY_DISABLED": "1",
    "ASTRO_DISABLE_UPDATE_CHECK": "true",
    "BROWSER": "none",
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
}


def state_dir(sessions_dir: Path, thread_id: str) -> Path:
    """`{sessions}/.previews/thread-{id}/`: config, log and caches of one session's server."""
    return sessions_dir / STATE_DIR_NAME / f"thread-{thread_id}"


def dev_config(
    *,
    thread_id: str,
    worktree: Path,
    state: Path,
    port: int,
    allowed_hosts: Sequence[str] | None = None,
    modules: Path | None = None,
) -> dict[str, Any]:
    """The document runner.mjs reads: the project root, Astro's inline config, and the only
    folders the dev server may serve files from (its guard refuses anything resolving
    elsewhere: symlinks in public/, `/@fs/` probes)."""
    prefix = session_prefix(thread_id)
    serve_roots = [str(worktree), str(modules or worktree.parent / "node_modules")]
    inline: dict[str, Any] = {
        "root": str(worktree),
        "base": "/",
        "logLevel": "info",
        "cacheDir": str(state / "astro-cache"),
        "devToolbar": {"enabled": False},
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "open": False,
            "allowedHosts": list(allowed_hosts) if allowed_hosts is not None else True,
        },
        "vite": {
            "base": prefix,
            "cacheDir": str(state / "vite-cache"),
            "clearScreen": False,
            "define": {"import.meta.env.BASE_URL": json.dumps(f"{prefix}/")},
            "server": {"strictPort": True, "fs": {"strict": True, "allow": serve_roots}},
        },
    }
    return {"root": str(worktree), "inline": inline, "serveRoots": serve_roots,
            "base": prefix}


PASS_ENV: Final = ("PATH", "LANG", "LC_ALL", "TZ", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE")


def dev_env(base: Mapping[str, str], tmp: Path | None = None) -> dict[str, str]:
    """The dev server's whole environment: an allowlist of the parent's, never all of it."""
    env = {k: base[k] for k in PASS_ENV if k in base}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if tmp is not None:
        env.update({"HOME": str(tmp), "TMPDIR": str(tmp)})
    env.update(DEV_ENV)
    return env
