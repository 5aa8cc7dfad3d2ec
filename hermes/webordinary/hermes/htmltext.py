"""HTML mail bodies to plain text (stdlib html.parser), keeping quotes recognisable."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Paragraph-like blocks are separated by a blank line, line-like blocks by a line break.
_PARAGRAPHS = frozenset(
    {"p", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "dl"}
)
_LINES = frozenset({"div", "tr", "li", "section", "article", "header", "footer", "dt", "dd"})
_SKIP = frozenset({"style", "script", "head", "title", "template"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class _TextExtractor(HTMLParser):
    """Collects text; block tags end lines, blockquotes prefix their lines with '> '."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._skip = 0
        self._quote = 0
        self._pre = 0
        self._href: list[str | None] = []

    def _flush(self, blank: bool = False, always: bool = False) -> None:
        """End the current line (if it has text, or `always`); `blank` adds a blank line."""
        text = "".join(self._line)
        if not self._pre:
            text = _SPACES.sub(" ", text).strip()
        prefix = "> " * self._quote
        if text or always:
            self.lines.append((prefix + text).rstrip())
        if blank and self.lines and self.lines[-1].strip("> "):
            self.lines.append(prefix.rstrip())
        self._line = []

    def _break(self, tag: str) -> None:
        if tag == "br":
            self._flush(always=True)
        elif tag in _PARAGRAPHS:
            self._flush(blank=True)
        elif tag in _LINES:
            self._flush()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
            return
        self._break(tag)
        if tag == "blockquote":
            self._quote += 1
        elif tag == "pre":
            self._pre += 1
        elif tag == "li":
            self._line.append("- ")
        elif tag == "a":
            self._href.append(dict(attrs).get("href"))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._line.append(f"[{alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
            return
        if tag == "a" and self._href:
            href = self._href.pop()
            text = "".join(self._line)
            if href and href.startswith(("http://", "https://")) and href not in text:
                self._line.append(f" <{href}>")
        if tag != "br":
            self._break(tag)
        if tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img"):
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            parts = data.split("\n")
            for part in parts[:-1]:
                self._line.append(part)
                self._flush(always=True)
            self._line.append(parts[-1])
        else:
            self._line.append(data.replace("\n", " "))


def html_to_text(html: str) -> str:
    """Readable text of an HTML body: paragraphs as lines, blockquotes as '> ' lines."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    parser._flush()
    text = "\n".join(parser.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
