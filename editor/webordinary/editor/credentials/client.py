"""The editor's side of the credential proxy: the placeholder key and the metered usage."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import aiohttp

from webordinary.editor.credentials.usage import Tokens


def read_token(path: Path, wait: float = 60.0) -> str:
    """The pod-local placeholder key (the proxy writes it when its container starts)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            token = path.read_text().strip()
            if token:
                return token
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the credential proxy's key file {path} is not there")
        time.sleep(0.2)


def helper_command() -> str:
    """git's credential.helper value: this interpreter running the helper module."""
    return f"!'{sys.executable}' -m webordinary.editor.credentials.helper"


async def metered(url: str, token: str) -> Tokens | None:
    """Tokens the proxy has forwarded so far (None when it cannot say)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as client,
            client.get(f"{url.rstrip('/')}/usage",
                       headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            if resp.status != 200:
                return None
            body = await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None
    return Tokens(int(body.get("input_tokens", 0)), int(body.get("output_tokens", 0)))
