"""The new text of a reply: quoted history, attributions and signatures removed (pure).

Cut points (everything from the line on is history or signature): Gmail/Apple/Thunderbird
attributions ("On ... wrote:", also wrapped over two lines and in a few languages), Outlook's
"-----Original Message-----" and "From: ... Sent:/Date: ..." header blocks (with the underscore
rule before them), the "-- " signature delimiter and mobile footers ("Sent from my iPhone",
"Get Outlook for Android"). Lines quoted with '>' are dropped wherever they are, so interleaved
answers survive. Forwarded messages are kept: their content is usually what the user wants on
the site.
"""

from __future__ import annotations

import re

_ATTRIBUTION = re.compile(
    r"^\s*(On\b.{0,400}\bwrote\s*:|Le\b.{0,400}\ba\s+écrit\s*:|Am\b.{0,400}\bschrieb\b.{0,200}:"
    r"|El\b.{0,400}\bescribió\s*:|Il\b.{0,400}\bha\s+scritto\s*:|Op\b.{0,400}\bschreef\b.{0,200}:)"
    r"\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original)"
    r"\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(From|De|Von|Van|Da)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(Sent|Date|Datum|Envoyé|Gesendet|Enviado|Inviato|To|Subject|Cc)\s*:", re.IGNORECASE
)
_SENT = re.compile(r"^\s*\*?(Sent|Gesendet|Envoyé|Enviado|Inviato|Verzonden)\s*:\*?\s", re.I)
_UNDERSCORES = re.compile(r"^\s*_{8,}\s*$")
_SIG_DELIM = re.compile(r"^--\s?$")
_MOBILE = re.compile(
    r"^\s*(Sent from my \w+|Sent from (Mail|Outlook|Yahoo Mail|Gmail)\b|Sent from \w+ for"
    r"|Get Outlook for (iOS|Android)|Envoyé de mon|Von meinem .* gesendet|Enviado desde mi)",
    re.IGNORECASE,
)
_FORWARD = re.compile(
    r"^\s*(-{5,}\s*Forwarded message\s*-{5,}|Begin forwarded message:|-{5,}\s*Forwarded by)",
    re.IGNORECASE,
)
_BLANKS = re.compile(r"\n{3,}")


def _is_outlook_block(lines: list[str], index: int) -> bool:
    """A quoted header block: 'From: x' directly followed by 'Sent:' (Outlook), or a
    'From: ... @...' line with at least two more header lines (Date:/To:/Subject:) below it."""
    if not _HEADER_FROM.match(lines[index]):
        return False
    window = lines[index + 1 : index + 5]
    if window and _SENT.match(window[0]):
        return True
    return "@" in lines[index] and sum(1 for line in window if _HEADER_NEXT.match(line)) >= 2


def _cut_index(lines: list[str]) -> int:
    """Index of the first line that starts history or a signature (len(lines) if none)."""
    in_forward = False
    for i, line in enumerate(lines):
        if _FORWARD.match(line):
            in_forward = True  # a forward's own headers are content, not history
        if in_forward:
            continue
        joined = f"{line} {lines[i + 1].strip()}" if i + 1 < len(lines) else line
        if _ATTRIBUTION.match(line) or (
            not line.lstrip().startswith(">") and line.strip() and _ATTRIBUTION.match(joined)
            and not _ATTRIBUTION.match(lines[i + 1] if i + 1 < len(lines) else "")
            and line.lstrip().lower().startswith(("on ", "le ", "am ", "el ", "il ", "op "))
        ):
            return i
        if _ORIGINAL.match(line) or _SIG_DELIM.match(line) or _MOBILE.match(line):
            return i
        if _is_outlook_block(lines, i):
            back = i
            while back > 0 and (not lines[back - 1].strip() or _UNDERSCORES.match(lines[back - 1])):
                back -= 1
            return back
    return len(lines)


def strip_quotes(text: str) -> str:
    """The new text of a mail body: no quoted history, no attribution, no signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = lines[: _cut_index(lines)]
    kept = [line.rstrip() for line in lines if not line.lstrip().startswith(">")]
    return _BLANKS.sub("\n\n", "\n".join(kept)).strip()
