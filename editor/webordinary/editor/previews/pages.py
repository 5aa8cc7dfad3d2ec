"""The few HTML pages the entry point answers itself (no dev server involved)."""

from __future__ import annotations

from html import escape
from typing import Final

_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#2b2d42}h1{font-size:1.4rem}pre{white-space:pre-wrap;background:#f4f4f4;"
    "padding:1rem;font-size:.8rem}"
)


def _page(title: str, body: str, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>{meta}<style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def not_found_page(reason: str) -> str:
    return _page(
        "Preview not found",
        "<h1>There is no preview here</h1>"
        f"<p>{escape(reason)}.</p>"
        "<p>Preview links look like <code>/session/&lt;id&gt;/</code> and come in the reply "
        "to your email.</p>",
    )


def starting_page(thread_id: str, refresh: int) -> str:
    return _page(
        "Starting your preview",
        "<h1>Starting your preview&hellip;</h1>"
        f"<p>The preview of session <code>{escape(thread_id)}</code> is waking up. "
        f"This page reloads by itself in {refresh} seconds.</p>",
        refresh,
    )


def restarting_page(thread_id: str, refresh: int) -> str:
    return _page(
        "Restarting your preview",
        "<h1>Restarting your preview&hellip;</h1>"
        f"<p>The preview of session <code>{escape(thread_id)}</code> stopped unexpectedly and "
        f"is being restarted. This page reloads by itself in {refresh} seconds.</p>",
        refresh,
    )


def failed_page(thread_id: str, log_tail: str, refresh: int) -> str:
    return _page(
        "Preview could not start",
        "<h1>Your preview could not start</h1>"
        f"<p>The site of session <code>{escape(thread_id)}</code> did not start; the next "
        f"attempt is in {refresh} seconds. The last lines of its log:</p>"
        f"<pre>{escape(log_tail or '(no output)')}</pre>",
        refresh,
    )


def forbidden_page(host: str) -> str:
    return _page(
        "Host not allowed",
        f"<h1>Host not allowed</h1><p>Previews are not served for <code>{escape(host)}</code>."
        "</p>",
    )
