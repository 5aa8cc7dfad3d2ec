"""Parse workers: a mail that needs more memory than a worker may have fails alone, with
MemoryError, and the next mail is parsed by a fresh worker; costs are reported per mail."""

from __future__ import annotations

import pytest

from tests.plugins.hostile import attachment_mail, mail
from webordinary.hermes.workers import ParseFailure, ParserPool, worker_pids


async def test_a_mail_over_the_memory_limit_fails_alone() -> None:
    pool = ParserPool(1, timeout=30.0, memory_mib=32)
    try:
        parsed, cost = await pool.parse(mail())
        assert parsed.instruction == "Please make the header blue."
        assert cost.cpu_seconds < 1
        [first] = worker_pids(pool)
        with pytest.raises(ParseFailure) as failure:
            await pool.parse(attachment_mail(6_500_000))
        assert failure.value.cause == "memory"
        parsed, _ = await pool.parse(mail(subject="Next"))
        assert parsed.subject == "Next"
        assert worker_pids(pool) != [first]  # the worker that ran out was replaced
    finally:
        pool.close()


async def test_the_same_mail_fits_the_production_limit() -> None:
    pool = ParserPool(1)
    try:
        parsed, cost = await pool.parse(attachment_mail(6_500_000))
        [attachment] = parsed.attachments
        assert attachment.size > 6_000_000
        assert cost.peak_bytes < 64 * 2**20
    finally:
        pool.close()
