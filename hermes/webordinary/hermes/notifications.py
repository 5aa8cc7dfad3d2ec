"""SES receipt notifications as they arrive on the inbound SQS queue (pure parsing).

Two shapes: an SNS envelope (``{"Type": "Notification", "Message": "<SES JSON>"}``) or the
SES notification itself (SNS raw message delivery). The mail is either inline (``content``,
SNS action, UTF8 or BASE64 encoded) or stored by an S3 action (bucket + object key).
AWS adds fields over time, so these models ignore unknown fields instead of rejecting them.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from email.utils import getaddresses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webordinary.hermes.auth import Verdict, Verdicts
from webordinary.hermes.mail import HEADER_CHARS, clean, msg_ids


class _Aws(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _Status(_Aws):
    status: str = "NONE"


class _Action(_Aws):
    type: str
    bucket_name: str | None = Field(None, alias="bucketName")
    object_key: str | None = Field(None, alias="objectKey")
    object_key_prefix: str | None = Field(None, alias="objectKeyPrefix")
    encoding: str | None = None


class _Receipt(_Aws):
    timestamp: datetime | None = None
    recipients: list[str] = Field(default_factory=list)
    spf_verdict: _Status | None = Field(None, alias="spfVerdict")
    dkim_verdict: _Status | None = Field(None, alias="dkimVerdict")
    dmarc_verdict: _Status | None = Field(None, alias="dmarcVerdict")
    spam_verdict: _Status | None = Field(None, alias="spamVerdict")
    virus_verdict: _Status | None = Field(None, alias="virusVerdict")
    action: _Action


class _CommonHeaders(_Aws):
    from_: list[str] = Field(default_factory=list, alias="from")
    subject: str | None = None
    message_id: str | None = Field(None, alias="messageId")


class _Mail(_Aws):
    message_id: str = Field(alias="messageId")
    timestamp: datetime | None = None
    source: str = ""
    destination: list[str] = Field(default_factory=list)
    common_headers: _CommonHeaders | None = Field(None, alias="commonHeaders")


class _SesNotification(_Aws):
    notification_type: str = Field(alias="notificationType")
    mail: _Mail
    receipt: _Receipt
    content: str | None = None


class NotificationError(ValueError):
    """The queue message is not an SES receipt notification we can act on."""


class S3Location(BaseModel):
    model_config = ConfigDict(frozen=True)
    bucket: str
    key: str


class InboundNotification(BaseModel):
    """One received mail as SES announced it: where the bytes are and what SES checked."""

    model_config = ConfigDict(frozen=True)

    ses_message_id: str
    received_at: datetime | None = None
    recipients: list[str] = Field(default_factory=list)
    envelope_from: str = ""
    verdicts: Verdicts
    content: bytes | None = None
    s3: S3Location | None = None
    header_from: list[str] = Field(default_factory=list)
    """The From addresses SES read (commonHeaders): whom to tell when the mail is unreadable."""
    subject: str = ""
    header_message_id: str | None = None


def _verdict(status: _Status | None) -> Verdict:
    if status is None:
        return Verdict.NONE
    try:
        return Verdict(status.status.upper())
    except ValueError:
        return Verdict.NONE


def parse_notification(body: str) -> InboundNotification | None:
    """Parse an SQS message body. None for messages to ignore (SNS subscription handshakes,
    SES setup notifications); NotificationError for anything unusable.
    """
    try:
        data: Any = json.loads(body)
    except json.JSONDecodeError as exc:
        raise NotificationError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise NotificationError("not a JSON object")
    if "Type" in data and "notificationType" not in data:
        if data["Type"] != "Notification":
            return None  # SubscriptionConfirmation / UnsubscribeConfirmation
        try:
            data = json.loads(data.get("Message", ""))
        except (json.JSONDecodeError, TypeError) as exc:
            raise NotificationError(f"SNS Message is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise NotificationError("SNS Message is not a JSON object")
    if data.get("notificationType") == "AmazonSnsSubscriptionSucceeded":
        return None
    try:
        note = _SesNotification.model_validate(data)
    except ValidationError as exc:
        raise NotificationError(f"not an SES notification: {exc.errors()[0]['msg']}") from exc
    if note.notification_type != "Received":
        return None
    content: bytes | None = None
    if note.content is not None:
        if (note.receipt.action.encoding or "UTF8").upper() == "BASE64":
            try:
                content = base64.b64decode(note.content, validate=False)
            except (binascii.Error, ValueError) as exc:
                raise NotificationError(f"content is not base64: {exc}") from exc
        else:
            content = note.content.encode("utf-8", "surrogateescape")
    s3 = None
    action = note.receipt.action
    if action.type.upper() == "S3" and action.bucket_name:
        key = action.object_key or f"{action.object_key_prefix or ''}{note.mail.message_id}"
        s3 = S3Location(bucket=action.bucket_name, key=key)
    if content is None and s3 is None:
        raise NotificationError("the notification carries neither content nor an S3 location")
    r = note.receipt
    return InboundNotification(
        ses_message_id=note.mail.message_id,
        received_at=r.timestamp or note.mail.timestamp,
        recipients=[x.lower() for x in (r.recipients or note.mail.destination)],
        envelope_from=note.mail.source.lower(),
        verdicts=Verdicts(
            spf=_verdict(r.spf_verdict),
            dkim=_verdict(r.dkim_verdict),
            dmarc=_verdict(r.dmarc_verdict),
            spam=_verdict(r.spam_verdict),
            virus=_verdict(r.virus_verdict),
        ),
        content=content,
        s3=s3,
        **_common(note.mail.common_headers),
    )


def _common(headers: _CommonHeaders | None) -> dict[str, Any]:
    """Sender, subject and Message-ID as SES parsed them (bounded, cleaned)."""
    if headers is None:
        return {}
    pairs = getaddresses([v[:HEADER_CHARS] for v in headers.from_[:10]])
    ids = msg_ids((headers.message_id or "")[:1024])
    return {
        "header_from": [a.lower() for _, a in pairs if "@" in a][:10],
        "subject": clean(headers.subject or "", 1000),
        "header_message_id": ids[0] if ids else None,
    }
