"""Absolute paths out of what visitors see (error pages, failure logs): pure text rewriting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

# An absolute path of two or more segments not preceded by a word character, a dot or a
# slash (so URLs like https://host/a/b and relative paths stay as they are).
_ABSOLUTE: Final = re.compile(r"(?<![\w.:/\\-])(?:/[\w.@+~-]+){2,}/?")
_WORKTREE: Final = re.compile(r"thread-[0-9A-Za-z_-]+/")


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

    return _ABSOLUTE.sub(relative, text)
