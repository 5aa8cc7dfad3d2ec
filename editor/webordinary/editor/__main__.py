"""`python -m webordinary.editor`: the editor pod's process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from pydantic import ValidationError

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
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, editor.shutdown)
    await editor.run()


def main() -> None:
    try:
        config = load_config()
    except ValidationError as exc:
        print(f"invalid editor configuration (WEBORDINARY_* variables):\n{exc}", file=sys.stderr)
        sys.exit(2)
    # Files the editor writes are readable by the volume's group (the preview container reads
    # the worktrees) and by nobody else.
    os.umask(0o027)
    logging.basicConfig(
        level=config.settings.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "urllib3", "claude_agent_sdk", "asyncio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        asyncio.run(serve(config))
    except Exception:
        log.exception("the editor stopped on an error")
        sys.exit(1)


if __name__ == "__main__":
    main()
