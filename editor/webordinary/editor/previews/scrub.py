"""Absolute paths out of what visitors see (error pages, failure logs): pure text rewriting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

# An absolute path of two or more segments not preceded by a word character, a dot or a
# slash (so URLs like https://host/a/b and relative paths stay as they are).
_ABSOLUTE: Final = re.compile(r"(?<![\w.:/\\-])(?:/[\w.@+~-]+){2,}/?")
_WORKTREE: Final = re.compile(r"thread-[0-9A-Za-z_-]+/")
_FILE_URL: Final = re.compile(r"file://(?=/)")


def scrub_paths(text: str, sessions: Path | str) -> str:
    """Worktree paths become project-relative, node_modules paths start at node_modules/,
    and every other absolute path is reduced to its last segment."""

    def relative(match: re.Match[str]) -> str:
        path = match.group(0)
        if path.startswith("/session/"):
            return path
        root = str(sessions).rstrip("/") + "/"
        if path.startswith(root):
            rest = path[len(root):]
            inside = _WORKTREE.match(rest)
            if inside:
                return rest[inside.end():] or "./"
            return rest
        marker = path.find("/node_modules/")
        if marker >= 0:
            return path[marker + 1:]
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return f".../{name}"

    return _ABSOLUTE.sub(relative, _FILE_URL.sub("", text))


def _scrub_all(value: Any, sessions: Path | str) -> Any:
    if isinstance(value, str):
        return scrub_paths(value, sessions)
    if isinstance(value, dict):
        return {key: _scrub_all(item, sessions) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub_all(item, sessions) for item in value]
    return value


def scrub_hmr(text: str, sessions: Path | str) -> str:
    """One Vite HMR message from the dev server: an error (what the error overlay shows:
    err.message, stack, id, frame, loc.file, ...) and a full reload's `triggeredBy` lose their
    absolute paths; every other message (updates name URL paths) passes untouched."""
    if '"error"' not in text and '"triggeredBy"' not in text:
        return text
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    if not isinstance(payload, dict):
        return text
    if payload.get("type") == "error" and isinstance(payload.get("err"), dict):
        payload["err"] = _scrub_all(payload["err"], sessions)
    elif payload.get("type") == "full-reload" and isinstance(payload.get("triggeredBy"), str):
        payload["triggeredBy"] = scrub_paths(payload["triggeredBy"], sessions)
    else:
        return text
    return json.dumps(payload, separators=(",", ":"))
