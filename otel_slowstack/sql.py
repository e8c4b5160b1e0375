"""Database statements with their values taken out, so repeats can be counted.

``normalize`` turns ``SELECT name FROM customers WHERE id = 17`` and
``... WHERE id = 42`` into the same text, ``SELECT name FROM customers WHERE
id = ?``: string literals (``'...'``, ``E'...'``, dollar-quoted), numbers,
bind placeholders (``%s``, ``%(name)s``, ``$1``, ``:name``, ``?``) become
``?``; a parenthesised or bracketed list of them (an ``IN`` list, a
``VALUES`` row, an ``ARRAY[...]``) becomes one ``?``, and several such rows
one row; comments (sqlcommenter's ``/*traceparent=...*/`` among them) are
dropped and whitespace is collapsed. Quoted identifiers (``"orders"``,
```orders```) are names, not values, and stay. The result is what an N+1
event shows, so no literal a statement carried (a password, an e-mail) ever
leaves the process through it.

It is a grouping key, not a parser: any text gives the same answer every
time, and texts that differ only in their values give the same answer.
Only the first ``MAX_STATEMENT_CHARS`` characters are read.

``normalized`` is the same function behind a bounded cache: one application
issues few distinct statement texts, each thousands of times, and
normalisation runs once per text. A program issuing endless distinct texts
costs one normalisation each and never more than ``CACHE_SIZE`` entries.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Characters of a statement that are read; the tail of a longer one is cut.
MAX_STATEMENT_CHARS = 2048
#: Distinct statement texts whose normalised form is remembered.
CACHE_SIZE = 1024

_TOKENS = re.compile(
    r"""
      (?P<comment> --[^\n]* | /\*.*?(?:\*/|\Z) )
    | (?P<name> "(?:[^"]|"")*"? | `[^`]*`? )
    | (?P<dollar> \$(?P<tag>(?:[A-Za-z_]\w*)?)\$ .*? (?:\$(?P=tag)\$|\Z) )
    | (?P<string> (?:(?<![\w$])(?:[EeNnBbXx]|[Uu]&))? '(?:[^'\\]|\\.|'')*(?:'|\Z) )
    | (?P<param> %\([^)]*\)s | %s | \$\d+ | \? | (?<![:\w]):\w+ )
    | (?P<number> (?<![\w$]) (?:0[xX][0-9A-Fa-f]+ | (?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?) (?![\w$]) )
    """,
    re.VERBOSE | re.DOTALL,
)
#: ``( ?, ?, ? )`` or ``[?, ?]`` once values are gone.
_LIST = re.compile(r"([(\[]) ?\?(?: ?, ?\?)* ?([)\]])")
#: ``(?), (?), (?)``: the rows of a multi-row VALUES.
_ROWS = re.compile(r"\(\?\)(?: ?, ?\(\?\))+")


def _replace(match: "re.Match[str]") -> str:
    kind = match.lastgroup
    if kind == "comment":
        return " "
    if kind == "name":
        return match.group()
    return "?"


def normalize(statement: str) -> str:
    """The statement with every value replaced by ``?``; pure, uncached."""
    text = _TOKENS.sub(_replace, statement[:MAX_STATEMENT_CHARS])
    text = " ".join(text.split())
    text = _LIST.sub(r"\1?\2", text)
    return _ROWS.sub("(?)", text)


@lru_cache(maxsize=CACHE_SIZE)
def _normalized(statement: str) -> str:
    return normalize(statement)


#: ``normalize`` through the bounded cache, for a text of at most
#: ``MAX_STATEMENT_CHARS`` (the C cache itself, called on every database
#: span's end: ``counters.child_ended``); ``normalized`` for any text.
normalized_short = _normalized


def normalized(statement: str) -> str:
    """``normalize`` through the bounded cache; a long text is cut before it is a key."""
    if len(statement) > MAX_STATEMENT_CHARS:
        statement = statement[:MAX_STATEMENT_CHARS]
    return _normalized(statement)


def cache_size() -> int:
    """Texts currently remembered (for tests and for the curious)."""
    return _normalized.cache_info().currsize


def abbreviate(text: str, limit: int = 120) -> str:
    """At most ``limit`` characters, keeping both ends: ``SELECT a, b ... FOR UPDATE``."""
    if len(text) <= limit:
        return text
    tail = max(limit // 3, 1)
    head = max(limit - tail - 5, 1)
    return f"{text[:head].rstrip()} ... {text[-tail:].lstrip()}"
