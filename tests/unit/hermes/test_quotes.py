"""Quote and signature stripping on the shapes real clients produce."""

from __future__ import annotations

import pytest

from webordinary.hermes.htmltext import html_to_text
from webordinary.hermes.quotes import strip_quotes

CASES = {
    "gmail": ("Make it blue.\n\nOn Mon, 1 Jan 2026 at 10:00, Web <e@w.dev> wrote:\n> old\n",
              "Make it blue."),
    "gmail-wrapped": ("Make it blue.\n\nOn Mon, Jan 1, 2026 at 10:00 AM Webordinary <\n"
                      "edit@webordinary.dev> wrote:\n\n> old\n", "Make it blue."),
    "french": ("Plus grand.\n\nLe lun. 1 janv. 2026 à 10:00, Web <e@w.dev> a écrit :\n> x\n",
               "Plus grand."),
    "german": ("Größer bitte.\n\nAm Mo., 1. Jan. 2026 um 10:00 Uhr schrieb Web <e@w.dev>:\n> x",
               "Größer bitte."),
    "outlook-block": ("Yes.\n\nFrom: Web <e@w.dev>\nSent: Monday\nTo: me\nSubject: Re: x\n\nold",
                      "Yes."),
    "outlook-bold": ("Yes.\n\n*From:* Web <e@w.dev>\n*Sent:* Monday\n*To:* me\n\nold", "Yes."),
    "original": ("Yes.\n-----Original Message-----\nFrom: x\nold", "Yes."),
    "sig": ("Change it.\n-- \nJohn\nCEO", "Change it."),
    "iphone": ("Change it.\n\nSent from my iPhone", "Change it."),
    "android-outlook": ("Change it.\n\nGet Outlook for Android", "Change it."),
    "interleaved": ("> Which page?\nThe about page.\n> Which colour?\nGreen.",
                    "The about page.\nGreen."),
    "keeps-from-in-text": ("From: the top of the page, remove the banner.",
                           "From: the top of the page, remove the banner."),
    "keeps-on-sentence": ("On the home page, write that we are open.\nThanks",
                          "On the home page, write that we are open.\nThanks"),
    "keeps-hours": ("Please set the hours:\nFrom: 9am\nTo: 5pm\nDate: every weekday",
                    "Please set the hours:\nFrom: 9am\nTo: 5pm\nDate: every weekday"),
    "outlook-no-address": ("Ok.\n\nFrom: Webordinary\nSent: Monday, 1 June\nTo: Me\n\nold",
                           "Ok."),
    "forward-kept": ("See below.\n\n---------- Forwarded message ---------\nFrom: A <a@b.c>\n"
                     "Date: Mon\nSubject: S\nTo: B <b@c.d>\n\nText", None),
    "crlf": ("Line one\r\nLine two\r\n\r\nOn Mon, X wrote:\r\n> q", "Line one\nLine two"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_strip_quotes(name: str) -> None:
    text, expected = CASES[name]
    assert strip_quotes(text) == (text.strip() if expected is None else expected)


def test_html_blockquote_history_is_stripped() -> None:
    html = ("<div>New text</div><div class=gmail_quote><div>On Mon, X &lt;x@y&gt; wrote:</div>"
            "<blockquote><div>old</div></blockquote></div>")
    assert strip_quotes(html_to_text(html)) == "New text"


def test_html_to_text_layout() -> None:
    html = ("<style>p{}</style><p>One &amp; two</p><p>Three<br>four</p>"
            '<ul><li>a</li><li>b</li></ul><a href="https://x.dev/p">link</a>')
    assert html_to_text(html) == "One & two\n\nThree\nfour\n\n- a\n- b\n\nlink <https://x.dev/p>"
