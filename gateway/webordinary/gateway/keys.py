"""Link keys from the mounted Secret (files `current` and `previous`), re-read periodically."""

from __future__ import annotations

import logging
from pathlib import Path

from webordinary.contracts.links import KEY_NAMES, LinkKeyError, LinkKeys, keys_from_mapping

log = logging.getLogger(__name__)


def read_keys(folder: Path) -> LinkKeys:
    """The keys in `folder`; a missing or short `current` key raises LinkKeyError."""
    values: dict[str, bytes] = {}
    for name in KEY_NAMES:
        path = folder / name
        if path.is_file():
            values[name] = path.read_bytes()
    if "current" not in values:
        raise LinkKeyError(f"no link key at {folder / 'current'}")
    return keys_from_mapping(values)


def reload_keys(folder: Path, old: LinkKeys | None) -> LinkKeys | None:
    """New keys when they changed and are valid; the old ones (and a log line) otherwise.

    A Secret volume is updated in place by the kubelet (about a minute after the Secret),
    so rotation needs no restart.
    """
    try:
        keys = read_keys(folder)
    except (OSError, LinkKeyError) as exc:
        log.error("link keys in %s unreadable, keeping the previous ones: %s", folder, exc)
        return old
    if keys != old:
        log.info("link keys loaded (signing key %s%s)", keys.current.key_id,
                 f", also accepting {keys.previous.key_id}" if keys.previous else "")
    return keys
