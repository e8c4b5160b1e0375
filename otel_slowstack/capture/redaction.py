"""Credentials recognised by what they look like, whatever they are called.

A name tells only half of it: ``dsn = 'postgres://app:PASS@db/shop'`` or
``argv = ['--password', 'PASS']`` hold a secret under an innocent name. So,
besides names (local variables, dictionary keys) matching the redaction
pattern, these are replaced by ``[REDACTED]`` wherever they appear:

- the password in a URL's userinfo (``scheme://user:[REDACTED]@host``), and
  a userinfo of 16 characters or more with no password (a token);
- ``Bearer``/``Basic`` credentials;
- ``NAME=VALUE`` and ``NAME: VALUE`` in text (query strings, libpq DSNs,
  ``--password=...``, JSON, header lines) when NAME is a secret's name, and
  a long random-looking word right after such a name (``api key 9f8e...``);
- in a list or tuple, the item after a ``--flag`` with a secret's name, the
  second of a pair whose first is one (``('Authorization', 'Bearer x')``,
  ``('password', 'x')``), and a long random-looking string right after one.

A secret's name is one matching the built-in pattern or the user's
``OTEL_PYTHON_SLOWSTACK_REDACT``: the user's pattern adds names, it never
takes the built-in ones away, so no setting can weaken redaction.

Pure functions on the watchdog thread; they see a bounded window of each
value (see ``local_variables``), never the whole of a large one.
"""

from __future__ import annotations

import re
from typing import Pattern

from otel_slowstack.settings import DEFAULT_REDACT

REDACTED = "[REDACTED]"

_BUILT_IN = re.compile(DEFAULT_REDACT, re.IGNORECASE)
#: Only this much of a name is matched against a (user-written) pattern.
_NAME_CHARS = 100

# Each pattern starts only where a word starts (a look-behind, not \b), so a
# long run of letters (base64, a hash) costs one pass, not one per position.
_URL_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/?#@:\[\]]*)"
    r"(?::(?P<password>\S*))?@"
)
# A URL cut by the scan window before its '@': the rest may be a password.
_URL_CUT = re.compile(r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/?#@:]*):(?P<password>\S*)\Z")
_AUTH_SCHEME = re.compile(r"\b(?P<scheme>Bearer|Basic)(?P<gap>\s+)(?P<credential>[^\s,;'\"]+)", re.IGNORECASE)
_PAIR = re.compile(r"(?<![\w.\-])-*(?P<key>[A-Za-z_][\w.\-]*)[\"']?(?P<gap>\s*[=:]\s*|\s+)")
_PAIR_VALUE = re.compile(
    r"\"[^\"]*\"?|'[^']*'?|(?:(?:Bearer|Basic)\s+)?[^\s&;,'\"}\])]+", re.IGNORECASE
)


class Redactor:
    """Knows a secret's name, and redacts secrets in text.

    Built once per sample; holds the user's pattern beside the built-in one.
    """

    __slots__ = ("user", "only_built_in")

    def __init__(self, user: Pattern[str]) -> None:
        self.user = user
        self.only_built_in = user.pattern == DEFAULT_REDACT

    def is_secret_name(self, name: str) -> bool:
        name = name[:_NAME_CHARS]
        return bool(_BUILT_IN.search(name)) or bool(self.user.search(name))

    def is_flag(self, item: str) -> bool:
        """``--password``, ``-api-key``: a command-line flag with a secret's name."""
        return item.startswith("-") and len(item) <= _NAME_CHARS and self.is_secret_name(item.lstrip("-"))

    def is_pair_name(self, item: str) -> bool:
        """The first of a pair such as a header: a short word with a secret's name."""
        return len(item) <= _NAME_CHARS and not any(c.isspace() for c in item) and self.is_secret_name(item)

    def text(self, text: str, cut: bool = False) -> str:
        """``text`` with every credential it shows replaced; ``cut`` says the
        text is the start of a longer value, so a secret may run past its end."""
        text = self._pairs(text)
        text = _AUTH_SCHEME.sub(lambda m: m.group("scheme") + m.group("gap") + REDACTED, text)
        if "@" in text:  # the cheap test first: most strings have none
            text = _URL_USERINFO.sub(_userinfo, text)
        if cut and "://" in text:
            text = _URL_CUT.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{REDACTED}", text)
        return text

    def _pairs(self, text: str) -> str:
        # A search loop, not re.sub: a pair whose key is harmless must not
        # swallow the text after it ("x=--password=PASS").
        if self.only_built_in and not _BUILT_IN.search(text):
            return text  # no secret's name anywhere: one scan, not one per word
        out, position, copied = [], 0, 0
        while True:
            match = _PAIR.search(text, position)
            if match is None:
                break
            position = match.end()
            if not self.is_secret_name(match.group("key")):
                continue
            value = _PAIR_VALUE.match(text, position)
            if value is None or value.group().startswith(REDACTED):
                continue
            if match.group("gap").isspace() and not looks_random(value.group()):
                continue  # "token expired": words after a name, not a value
            out.append(text[copied:position])
            out.append(REDACTED)
            copied = position = value.end()
        if not out:
            return text
        out.append(text[copied:])
        return "".join(out)


def looks_random(text: str) -> bool:
    """A long run of letters and digits, as keys and tokens are, unlike words."""
    if len(text) < 16 or len(set(text)) < 8:
        return False
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text) and not any(c.isspace() for c in text)


def _userinfo(match: "re.Match[str]") -> str:
    user, password = match.group("user"), match.group("password")
    if password is None:
        # user@host is common (ssh-style); a long bare userinfo is a token.
        return match.group() if len(user) < 16 else f"{match.group('scheme')}{REDACTED}@"
    return f"{match.group('scheme')}{user}:{REDACTED}@"
