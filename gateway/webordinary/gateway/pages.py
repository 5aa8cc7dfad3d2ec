"""The few answers the gateway gives itself: small HTML pages for browsers, text otherwise."""

from __future__ import annotations

from html import escape
from typing import Final

from aiohttp import web

_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#2b2d42;line-height:1.5}h1{font-size:1.4rem}"
)
NO_STORE: Final = {"Cache-Control": "no-store"}


def wants_html(request: web.Request) -> bool:
    """Browsers ask for text/html; curl, monitors and fetch() calls usually do not."""
    return "text/html" in request.headers.get("Accept", "")


def _html(title: str, paragraphs: list[str], refresh: int | None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title>{meta}<style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def page(request: web.Request, status: int, title: str, paragraphs: list[str], *,
         retry_after: int | None = None, refresh: bool = False) -> web.Response:
    headers = dict(NO_STORE)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if wants_html(request):
        return web.Response(status=status, headers=headers, content_type="text/html",
                            text=_html(title, paragraphs, retry_after if refresh else None))
    return web.Response(status=status, headers=headers,
                        text="\n".join([title, *paragraphs]) + "\n")


def starting(request: web.Request, retry_after: int) -> web.Response:
    return page(request, 503, "Starting your preview", [
        "Your preview was asleep and is waking up; this usually takes a few seconds.",
        f"This page reloads by itself every {retry_after} seconds until it is ready.",
    ], retry_after=retry_after, refresh=True)


def failed(request: web.Request) -> web.Response:
    return page(request, 503, "Your preview is not available", [
        "The editing environment behind this preview has a problem and cannot start now.",
        "Our team has been notified by the platform; reply to your latest email if it "
        "does not come back.",
    ], retry_after=60, refresh=True)


def suspended(request: web.Request) -> web.Response:
    return page(request, 503, "This preview is paused", [
        "The editing environment behind this preview has been paused by an administrator.",
    ])


def unknown(request: web.Request, reason: str) -> web.Response:
    return page(request, 404, "There is no preview here", [
        f"{reason[:1].upper()}{reason[1:]}.",
        "Preview links come in the replies to your emails; use the link from the latest one.",
    ])


def forbidden(request: web.Request) -> web.Response:
    return page(request, 403, "This preview link is not valid", [
        "The link is incomplete, has expired or belongs to another conversation.",
        "Please use the preview link from the latest email we sent you.",
    ])


def unavailable(request: web.Request, retry_after: int) -> web.Response:
    return page(request, 503, "Your preview is restarting", [
        "The preview did not answer; it is probably restarting. Please try again shortly.",
    ], retry_after=retry_after, refresh=True)


def timed_out(request: web.Request) -> web.Response:
    return page(request, 504, "Your preview took too long to answer", [
        "Please reload the page; a first visit after a change can take a moment.",
    ])
