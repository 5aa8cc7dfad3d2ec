"""Local mode: an SMTP listener (aiosmtpd) that feeds mail into the same pipeline as SES."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from typing import Any

from aiosmtpd.smtp import SMTP

from webordinary.hermes.auth import smtp_verdicts
from webordinary.hermes.decisions import Inbound
from webordinary.hermes.mail import HEADER_CHARS, clean, decode_words, msg_ids

log = logging.getLogger(__name__)


class RetryLaterError(Exception):
    """Raised by the pipeline when the mail should be offered again later (SMTP 451)."""


class SmtpHandler:
    """aiosmtpd handler: DATA -> Inbound (local policy verdicts) -> pipeline -> 250/451."""

    def __init__(
        self,
        pipeline: Callable[[Inbound], Awaitable[str]],
        trusted_networks: Iterable[str],
        retry_errors: tuple[type[BaseException], ...] = (RetryLaterError,),
    ) -> None:
        self.pipeline = pipeline
        self.trusted_networks = list(trusted_networks)
        self.retry_errors = retry_errors
        self._ids = itertools.count(1)
        self._started = datetime.now(UTC).strftime("%Y%m%d%H%M%S")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content or b""
        headers = BytesHeaderParser().parsebytes(raw)
        header_from = parseaddr(str(headers.get("From", ""))[:HEADER_CHARS])[1].lower()
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        verdicts = smtp_verdicts(
            peer, (envelope.mail_from or "").lower(), header_from, self.trusted_networks
        )
        inbound = Inbound(
            raw=raw, verdicts=verdicts, source="smtp",
            delivery_id=f"smtp-{self._started}-{next(self._ids)}",
            recipients=[r.lower() for r in envelope.rcpt_tos],
            envelope_from=(envelope.mail_from or "").lower(),
            received_at=datetime.now(UTC),
            header_from=[header_from] if header_from else [],
            subject=clean(decode_words(str(headers.get("Subject", ""))[:HEADER_CHARS]), 1000),
            header_message_id=next(iter(msg_ids(str(headers.get("Message-ID", ""))[:1024])),
                                   None),
        )
        try:
            outcome = await self.pipeline(inbound)
        except self.retry_errors as exc:
            log.warning("SMTP mail from %s postponed: %s", envelope.mail_from, exc)
            return "451 4.3.0 Temporarily unable to process, try again later"
        except Exception:
            log.exception("SMTP mail from %s failed", envelope.mail_from)
            return "451 4.3.0 Internal error, try again later"
        return f"250 2.0.0 OK {outcome}"


async def start_smtp(
    handler: SmtpHandler, host: str, port: int, data_size_limit: int
) -> asyncio.Server:
    """Listen on host:port (0 = any free port) in the running event loop."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=data_size_limit, hostname="hermes.local",
                     enable_SMTPUTF8=True, loop=loop),
        host=host, port=port,
    )
