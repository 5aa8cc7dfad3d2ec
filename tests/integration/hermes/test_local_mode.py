"""Local mode: replies over SMTP instead of SES, and `python -m webordinary.hermes` as a process."""

from __future__ import annotations

import asyncio
import email
import os
import re
import signal
import smtplib
import sys
from email import policy
from pathlib import Path
from typing import Any

import aiohttp
import boto3
from aiosmtpd.smtp import SMTP

from tests.plugins.hermes import FROM_ADDRESS, ROUTING_YAML, OperatorStandIn, corpus
from webordinary.devkit.aws import MotoServer
from webordinary.devkit.kubeapi import KubeAPI
from webordinary.hermes.app import start
from webordinary.hermes.settings import HermesSettings

REPO = Path(__file__).resolve().parents[3]


class Catcher:
    """An SMTP server that keeps what it is given (a developer's mail catcher)."""

    def __init__(self) -> None:
        self.mails: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append(email.message_from_bytes(envelope.content,  # type: ignore[arg-type]
                                                   policy=policy.default))
        return "250 OK"


async def test_smtp_in_and_smtp_out(kube_api: KubeAPI, moto: MotoServer, tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    catcher = Catcher()
    server = await loop.create_server(lambda: SMTP(catcher, loop=loop), "127.0.0.1", 0)
    out_port = server.sockets[0].getsockname()[1]
    (tmp_path / "routing.yaml").write_text(ROUTING_YAML)
    settings = HermesSettings(
        namespace="webordinary", kube_api_url=kube_api.url, aws_endpoint_url=moto.endpoint_url,
        from_address=FROM_ADDRESS, routing_file=tmp_path / "routing.yaml", smtp_enabled=True,
        smtp_port=0, smtp_outbound_host="127.0.0.1", smtp_outbound_port=out_port,
        metrics_host="127.0.0.1", metrics_port=0, results_wait_seconds=1,
    )
    running = await start(settings)
    operator = OperatorStandIn(kube_api.url, moto.endpoint_url, "webordinary")
    task = asyncio.create_task(operator.run())
    try:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", running.smtp_port or 0, timeout=30) as client:
                client.sendmail("john@ameliastamps.com", ["website@edit.webordinary.dev"],
                                corpus("gmail_new.eml"))

        await asyncio.to_thread(send)
        for _ in range(200):
            if catcher.mails:
                break
            await asyncio.sleep(0.05)
        [ack] = catcher.mails
        assert ack["X-Webordinary-Kind"] == "ack"
        assert ack["In-Reply-To"] == "<CAJx8mK3p2Lr9vQ=Hn5_T0bq+Yw4zA@mail.gmail.com>"
        assert moto.sent_emails() == []  # nothing went through SES
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await running.close()
        server.close()


async def test_module_entry_point_serves_health_and_stops_on_sigterm(
    kube_api: KubeAPI, moto: MotoServer, tmp_path: Path
) -> None:
    (tmp_path / "routing.yaml").write_text(ROUTING_YAML)
    sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
    inbound = sqs.create_queue(QueueName="entry-inbound")["QueueUrl"]
    env = {
        **os.environ,
        "WEBORDINARY_HERMES_KUBE_API_URL": kube_api.url,
        "WEBORDINARY_HERMES_AWS_ENDPOINT_URL": moto.endpoint_url,
        "WEBORDINARY_HERMES_INBOUND_QUEUE_URL": inbound,
        "WEBORDINARY_HERMES_INBOUND_WAIT_SECONDS": "1",
        "WEBORDINARY_HERMES_ROUTING_FILE": str(tmp_path / "routing.yaml"),
        "WEBORDINARY_HERMES_METRICS_HOST": "127.0.0.1",
        "WEBORDINARY_HERMES_METRICS_PORT": "0",
        "WEBORDINARY_HERMES_S3_BUCKET": "",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webordinary.hermes", env=env, cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        port = None
        async with asyncio.timeout(20):
            while port is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "Hermes exited early"
                found = re.search(r"metrics :(\d+)", line)
                port = int(found.group(1)) if found else None
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            async with asyncio.timeout(10):
                while True:  # ready once the environments were listed and routing loaded
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            break
                    await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
