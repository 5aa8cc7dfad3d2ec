"""npm install and `npm run build` as the supervisor runs them: minimal env, stoppable."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

STAMP: Final = ".webordinary-stamp"
# Only these of the supervisor's own variables reach customer code.
PASS_ENV: Final = ("PATH", "LANG", "LC_ALL", "TZ", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE")
QUIET: Final = {
    "ASTRO_TELEMETRY_DISABLED": "1", "ASTRO_DISABLE_UPDATE_CHECK": "true",
    "NPM_CONFIG_UPDATE_NOTIFIER": "false", "NPM_CONFIG_FUND": "false",
    "NPM_CONFIG_AUDIT": "false", "NO_COLOR": "1", "FORCE_COLOR": "0", "BROWSER": "none",
}


def customer_env(base: Mapping[str, str], tmp: Path) -> dict[str, str]:
    """The whole environment of customer code: an allowlist, never the parent's env."""
    env = {k: base[k] for k in PASS_ENV if k in base}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(QUIET)
    env.update({"HOME": str(tmp), "TMPDIR": str(tmp)})
    return env


def manifest_digest(folder: Path) -> str | None:
    """Hash of package.json + package-lock.json in `folder`; None without a package.json."""
    manifest = folder / "package.json"
    if not manifest.is_file():
        return None
    digest = hashlib.sha256(manifest.read_bytes())
    lock = folder / "package-lock.json"
    if lock.is_file():
        digest.update(lock.read_bytes())
    return digest.hexdigest()[:32]


async def run(args: list[str], *, cwd: Path, env: dict[str, str], limit: float,
              stop: asyncio.Event | None = None) -> tuple[int, str] | None:
    """Run in its own process group; None when stopped or out of time (the group is killed)."""
    process = await asyncio.create_subprocess_exec(
        *args, cwd=str(cwd), env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True)
    communicate = asyncio.ensure_future(process.communicate())
    stopper = asyncio.ensure_future(stop.wait() if stop is not None else asyncio.Event().wait())
    try:
        await asyncio.wait({communicate, stopper}, timeout=limit,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        finished = communicate.done()
        if not finished:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(BaseException):
                await communicate
    if not finished:
        return None
    return process.returncode or 0, communicate.result()[0].decode(errors="replace")


async def install(sessions: Path, *, cache: Path, tmp: Path, limit: float = 900.0) -> bool:
    """`npm ci` (or install) into {sessions}/node_modules, skipped when the stamp matches.

    The editor copies package.json/package-lock.json into {sessions}; node_modules exists
    already (the editor creates it writable for this container), npm ci empties it.
    """
    digest = manifest_digest(sessions)
    if digest is None:
        return False
    modules = sessions / "node_modules"
    stamp = modules / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    has_lock = (sessions / "package-lock.json").is_file()
    args = ["npm", "ci" if has_lock else "install", "--no-audit", "--no-fund",
            "--prefer-offline", "--loglevel=error", "--cache", str(cache)]
    if not has_lock:
        args.append("--package-lock=false")
    done = await run(args, cwd=sessions, env=customer_env(os.environ, tmp), limit=limit)
    if done is None:
        raise RuntimeError("npm install was stopped or took too long")
    code, out = done
    if code:
        raise RuntimeError(f"npm install failed: {out[-1500:]}")
    # A site without dependencies gets no node_modules from npm: the stamp makes one.
    modules.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    log.info("node dependencies installed in %s", modules)
    return True
