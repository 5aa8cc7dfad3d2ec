"""Preview links for reply mails: signed with the shared link key when one is configured."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from webordinary.contracts.links import (
    KEY_NAMES,
    LinkKeyError,
    LinkKeys,
    keys_from_mapping,
    signed_preview_url,
)

log = logging.getLogger(__name__)
RELOAD_SECONDS = 30.0


class PreviewLinks:
    """`{base}/session/{threadId}/?access=TOKEN`; plain links when no key folder is set."""

    def __init__(self, base_url: str, keys_dir: Path | None, ttl_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url
        self.keys_dir = keys_dir
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._keys: LinkKeys | None = None
        self._read_at = float("-inf")

    def keys(self) -> LinkKeys | None:
        """The mounted Secret, re-read now and then (rotation needs no restart)."""
        if self.keys_dir is None:
            return None
        now = time.monotonic()
        if now - self._read_at >= RELOAD_SECONDS:
            self._read_at = now
            try:
                values = {name: (self.keys_dir / name).read_bytes() for name in KEY_NAMES
                          if (self.keys_dir / name).is_file()}
                self._keys = keys_from_mapping(values)
            except (OSError, LinkKeyError) as exc:
                log.error("preview link keys in %s unreadable (%s): %s", self.keys_dir,
                          "keeping the previous ones" if self._keys else "links go unsigned",
                          exc)
        return self._keys

    def url(self, thread_id: str) -> str:
        return signed_preview_url(self.base_url, thread_id, self.keys(), self.clock(),
                                  self.ttl_seconds)
