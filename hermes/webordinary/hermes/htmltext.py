"""HTML mail bodies to plain text in linear time, without what a reader would not see.

A small tokenizer of its own (the stdlib's html.parser has inputs with quadratic cost on the
Python versions we run): every character is looked at a bounded number of times, whatever
the nesting. Text a mail client does not show (``display:none``, ``visibility:hidden``,
``font-size:0``, ``opacity:0``, zero height with hidden overflow, the ``hidden`` attribute,
``<style>``/``<script>``/``<head>``...) is dropped, so hidden words never reach the editor.
Blockquotes mark their lines with a single '> ' (how deep does not matter to strip_quotes).
"""

from __future__ import annotations

import html
import re

# Paragraph-like blocks are separated by a blank line, line-like blocks by a line break.
_PARAGRAPHS = frozenset(
    {"p", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "dl"}
)
_LINES = frozenset({"div", "tr", "li", "section", "article", "header", "footer", "dt", "dd"})
_SKIP = frozenset({"style", "script", "head", "title", "template", "noscript", "xml", "svg",
                   "object", "iframe", "select", "textarea", "button"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr", "basefont", "frame", "keygen"})
# Opening one of these closes an open <p> (as browsers do), so '<p hidden>x<div>y' shows y.
_CLOSES_P = _PARAGRAPHS | _LINES | {"address", "aside", "nav", "main", "figure", "form"}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
# The end of a tag: '>' outside quoted attribute values (possessive: no backtracking).
_TAG_END = re.compile(r"""(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""")
_TAG_NAME = re.compile(r"</?([A-Za-z][^\s/>]*)")
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*+=\s*+("[^"]*+"|'[^']*+'|[^\s>]++))?""")
_ZERO = r"(?:0*+\.)?0++(?:px|pt|em|rem|%)?+\s*+(?:!important)?+\s*+(?:;|$)"
_HIDING = re.compile(
    r"display\s*+:\s*+none|visibility\s*+:\s*+(?:hidden|collapse)|mso-hide\s*+:\s*+all"
    rf"|(?<![-\w])font-size\s*+:\s*+{_ZERO}|(?<![-\w])opacity\s*+:\s*+{_ZERO}",
    re.IGNORECASE,
)
_ZERO_BOX = re.compile(rf"(?<![-\w])(?:max-)?(?:height|width)\s*+:\s*+{_ZERO}", re.IGNORECASE)
_OVERFLOW_HIDDEN = re.compile(r"overflow\s*+:\s*+hidden", re.IGNORECASE)
STYLE_CHARS = 4096
"""Only the start of a style attribute is read (a hiding style is short)."""
MAX_HTML_CHARS = 4_000_000
"""Longer bodies are cut: the new text of a mail is at its top, the rest is history."""


def _attributes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _ATTR.finditer(text):
        name = match.group(1).lower()
        value = match.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        found.setdefault(name, html.unescape(value))
    return found


def hides(attrs: dict[str, str]) -> bool:
    """Whether an element with these attributes is invisible in a mail client."""
    if "hidden" in attrs:
        return True
    style = attrs.get("style", "")[:STYLE_CHARS]
    if not style:
        return False
    if _HIDING.search(style):
        return True
    return bool(_ZERO_BOX.search(style) and _OVERFLOW_HIDDEN.search(style))


class _Text:
    """The text being built: lines, the current line, and what is open around it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.line: list[str] = []
        self.quote = 0
        self.pre = 0
        self.skip = 0
        self.hidden = 0
        self.stack: list[tuple[str, bool, bool]] = []
        """Open elements: (tag, hides its content, skipped tag)."""
        self.open_count: dict[str, int] = {}
        self.href: list[str | None] = []

    def flush(self, blank: bool = False, always: bool = False) -> None:
        """End the current line (if it has text, or `always`); `blank` adds a blank line."""
        text = "".join(self.line)
        if not self.pre:
            text = _SPACES.sub(" ", text).strip()
        prefix = "> " if self.quote else ""
        if text or always:
            self.lines.append((prefix + text).rstrip())
        if blank and self.lines and self.lines[-1].strip("> "):
            self.lines.append(prefix.rstrip())
        self.line = []

    def brk(self, tag: str) -> None:
        if tag == "br":
            self.flush(always=True)
        elif tag in _PARAGRAPHS:
            self.flush(blank=True)
        elif tag in _LINES:
            self.flush()

    @property
    def visible(self) -> bool:
        return not self.skip and not self.hidden

    def data(self, text: str) -> None:
        if not self.visible or not text:
            return
        text = html.unescape(text)
        if self.pre:
            parts = text.split("\n")
            for part in parts[:-1]:
                self.line.append(part)
                self.flush(always=True)
            self.line.append(parts[-1])
        else:
            self.line.append(text.replace("\n", " "))

    def push(self, tag: str, hidden: bool, skipped: bool) -> None:
        self.stack.append((tag, hidden, skipped))
        self.open_count[tag] = self.open_count.get(tag, 0) + 1
        self.hidden += hidden
        self.skip += skipped

    def pop(self) -> str:
        tag, hidden, skipped = self.stack.pop()
        self.open_count[tag] -= 1
        self.hidden -= hidden
        self.skip -= skipped
        if tag == "blockquote":
            self.quote -= 1
        elif tag == "pre":
            self.pre -= 1
        return tag

    def start(self, tag: str, attrs: dict[str, str], closed: bool) -> None:
        if tag in _CLOSES_P and self.stack and self.stack[-1][0] == "p":
            self.end("p")
        if tag == "li" and self.stack and self.stack[-1][0] == "li":
            self.end("li")
        if self.visible:
            self.brk(tag)
        hidden = hides(attrs)
        if tag in _VOID:
            if self.visible and not hidden:
                if tag == "img" and attrs.get("alt"):
                    self.line.append(f"[{attrs['alt']}]")
                if tag == "hr":
                    self.brk("hr")
            return
        if closed and tag not in _SKIP and not hidden:
            return  # '<span/>': nothing inside
        self.push(tag, hidden, tag in _SKIP)
        if tag == "blockquote":
            self.quote += 1
        elif tag == "pre":
            self.pre += 1
        elif tag == "li" and self.visible:
            self.line.append("- ")
        elif tag == "a":
            self.href.append(attrs.get("href"))

    def end(self, tag: str) -> None:
        if not self.open_count.get(tag):
            if tag in ("br", "p") and self.visible:
                self.brk(tag)  # '</br>' and a stray '</p>' still end a line
            return
        while True:
            was_visible = self.visible
            popped = self.pop()
            if popped == "a" and self.href:
                href = self.href.pop()
                text = "".join(self.line)
                if was_visible and href and href.startswith(("http://", "https://")) and (
                    href not in text
                ):
                    self.line.append(f" <{href}>")
            if was_visible:
                self.brk(popped)
            if popped == tag:
                return


def html_to_text(source: str) -> str:
    """Readable, visible text of an HTML body: paragraphs as lines, quotes as '> ' lines."""
    doc = source[:MAX_HTML_CHARS]
    out = _Text()
    size = len(doc)
    i = 0
    while i < size:
        j = doc.find("<", i)
        if j < 0:
            out.data(doc[i:])
            break
        if j > i:
            out.data(doc[i:j])
        if doc.startswith("<!--", j):
            k = doc.find("-->", j + 4)
            i = size if k < 0 else k + 3
            continue
        following = doc[j + 1 : j + 2]
        if following in ("!", "?"):
            k = doc.find(">", j)
            i = size if k < 0 else k + 1
            continue
        name = _TAG_NAME.match(doc, j)
        if name is None:
            out.data("<")
            i = j + 1
            continue
        end = _TAG_END.match(doc, name.end())
        if end is None:
            break  # an unterminated tag or quote swallows the rest, as in a browser
        tag = name.group(1).lower()
        inner = doc[name.end() : end.end() - 1]
        i = end.end()
        if following == "/":
            out.end(tag)
            continue
        out.start(tag, _attributes(inner), inner.rstrip().endswith("/"))
        if tag in ("script", "style", "textarea", "title", "xml") and not inner.rstrip().endswith(
            "/"
        ):
            # raw text: everything up to the matching end tag is not markup
            k = _find_ci(doc, f"</{tag}", i)
            i = size if k < 0 else k
    while out.stack:
        out.end(out.stack[-1][0])
    out.flush()
    text = "\n".join(out.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _find_ci(doc: str, needle: str, start: int) -> int:
    """Case-insensitive find of an ASCII needle, linear in the text scanned."""
    pattern = re.compile(re.escape(needle), re.IGNORECASE)
    match = pattern.search(doc, start)
    return match.start() if match else -1
