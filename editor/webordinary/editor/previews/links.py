"""Symlinks of a site that lead outside it: a dev server never starts on them.

Vite lists the whole public/ folder, following symlinks: one link to `/` makes it crawl the
machine (and serve what it finds under the session's path). Refusing to start, with the link
names, is the clear answer.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_ENTRIES = 20_000


def escaping_links(worktree: Path, folder: str = "public") -> list[str]:
    """Worktree-relative names of symlinks under `folder` resolving outside the worktree."""
    root = worktree.resolve()
    base = worktree / folder
    found: list[str] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in [*dirnames, *filenames]:
            seen += 1
            path = Path(dirpath) / name
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    found.append(str(path.relative_to(worktree)))
        if seen > MAX_ENTRIES:
            break
    return sorted(found)
