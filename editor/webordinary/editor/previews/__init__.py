"""Live previews of session worktrees: Astro dev servers behind `/session/{threadId}/`."""

from webordinary.editor.previews.devconfig import GENERATED_IN_WORKTREE
from webordinary.editor.previews.devserver import PreviewStartError
from webordinary.editor.previews.service import (
    PreviewEvictedError,
    Previews,
    UnknownSessionError,
)

__all__ = [
    "GENERATED_IN_WORKTREE",
    "PreviewEvictedError",
    "PreviewStartError",
    "Previews",
    "UnknownSessionError",
]
