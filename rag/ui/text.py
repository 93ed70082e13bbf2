"""Untrusted text (file names, paths, document text, model output) as Markdown that renders literally.

One function set for every string the app shows: :func:`md` (the one to use), built on
:func:`escape_markdown` (HTML entity-escaped, Markdown syntax backslash-escaped) and :func:`code`
(an inline code span), so a document cannot inject links, images (which could leak data to a
remote server) or HTML. Anything a Markdown renderer would auto-link (``http://…``, ``www.…``,
``user@host``) becomes an inert code span: the host stays visible, nothing is clickable or fetched.

Example:
    >>> print(escape_markdown("**bold** <b>x</b>"))
    \\*\\*bold\\*\\* &lt;b&gt;x&lt;/b&gt;
    >>> md("see [click](https://evil.example/x) or www.evil.example.")
    'see \\\\[click\\\\]\\\\(`https://evil.example/x`\\\\) or `www.evil.example`\\\\.'
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~$:])")
# What GitHub-flavoured Markdown turns into a link even when every special character is escaped
# (remark-gfm auto-links the unescaped text): scheme://..., www...., mailto:/xmpp:, e-mail addresses.
_LINKISH = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\b(?:mailto|xmpp):|\bwww\.)[^\s`<>]+"
                      r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\"*_~"


def escape_markdown(text: str) -> str:
    """``text`` with HTML entity-escaped and every Markdown special character backslash-escaped.

    Links stay auto-linkable by a GFM renderer: show untrusted text with :func:`md`, which also
    makes them inert.
    """
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def code(text: str) -> str:
    """``text`` as an inline code span (shown verbatim, never a link), whatever backticks it holds.

    Example:
        >>> code("a `b` c")
        '``a `b` c``'
    """
    text = text.replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md(text: str) -> str:
    """Untrusted text as Markdown shown literally: escaped, and anything link-like an inert code span."""
    out, pos = [], 0
    for m in _LINKISH.finditer(text):
        link = m.group(0).rstrip(_TRAILING)
        out.append(escape_markdown(text[pos:m.start()]))
        out.append(code(link))
        pos = m.start() + len(link)
    out.append(escape_markdown(text[pos:]))
    return "".join(out)


def md_lines(text: str) -> str:
    """:func:`md` per line, with hard line breaks (for multi-line reports).

    Example:
        >>> md_lines("a.md: added\\n\\nb.md: failed")
        'a\\\\.md\\\\: added  \\nb\\\\.md\\\\: failed'
    """
    return "  \n".join(md(line.strip()) for line in text.splitlines() if line.strip())


def host_of(url: str) -> str:
    """The host a URL points at (what a phishing warning must name), or the URL itself.

    Example:
        >>> host_of("https://user@Example.invalid:8443/x"), host_of("www.example.invalid/login")
        ('example.invalid', 'www.example.invalid')
    """
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        host = None
    return host or url
