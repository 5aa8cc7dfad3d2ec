"""`python -m webordinary.editor`: the editor pod's process."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from webordinary.editor.process import log_to_stderr, on_stop, settings_or_exit
from webordinary.editor.settings import Config, load_config
from webordinary.editor.sqs import Queues
from webordinary.editor.worker import Editor, PreviewsLike

log = logging.getLogger("webordinary.editor")


def make_previews(config: Config) -> PreviewsLike | None:
    """The previews package when enabled and present (it ships separately)."""
    if not config.settings.previews_enabled:
        return None
    if config.settings.supervisor_url:
        # The split pod: customer code runs in the preview container, driven over loopback.
        from webordinary.editor.supervisor.client import SupervisorClient

        return SupervisorClient(config.settings.supervisor_url,
                                metrics_port=config.env.metrics_port,
                                host=config.settings.preview_host,
                                preview_port=config.env.preview_port)
    try:
        from webordinary.editor.previews import Previews
    except ImportError as exc:
        log.warning("previews unavailable (%s); running without them", exc)
        return None
    previews: PreviewsLike = Previews(
        config.workspace.sessions, port=config.env.preview_port,
        metrics_port=config.env.metrics_port, max_active=config.settings.max_previews,
        host=config.settings.preview_host,
    )
    return previews


async def serve(config: Config) -> None:
    editor = Editor(config, Queues(config.env), make_previews(config))
    on_stop(editor.shutdown)
    await editor.run()


def main() -> None:
    config = settings_or_exit(load_config, "editor configuration (WEBORDINARY_* variables)")
    # Files the editor writes are readable by the volume's group (the preview container reads
    # the worktrees) and by nobody else.
    os.umask(0o027)
    log_to_stderr(config.settings.log_level,
                  quiet=("botocore", "urllib3", "claude_agent_sdk", "asyncio", "aiohttp.access"))
    try:
        asyncio.run(serve(config))
    except Exception:
        log.exception("the editor stopped on an error")
        sys.exit(1)


if __name__ == "__main__":
    main()
