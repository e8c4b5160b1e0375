"""One HTTP client for the backend sources: headers, limits, and errors
turned into one line the user can act on (never a traceback).

What the user gives is only for the place they named: ``--header`` values
(API keys, ``X-Scope-OrgID``) and credentials written in the URL are sent to
that origin alone, never along a redirect to another one, and a URL's
password is never printed (``http://admin:***@host``). Every answer has a
size limit (``MAX_ANSWER``) and ``--timeout`` bounds each request as a whole,
headers and body, so a backend that trickles a byte at a time cannot hold
the command.
"""

from __future__ import annotations

import queue
import re
import threading
import time
import zlib
from typing import Any, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import ReportError

MIB = 1024 * 1024
#: One answer from a backend at most (a page of search results, one trace).
MAX_ANSWER = 64 * MIB
MAX_REDIRECTS = 5


class HttpStatusError(ReportError):
    """The backend answered, with an error status."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def parse_headers(values: list) -> dict:
    """``["Authorization: Bearer x", ...]`` -> a dict; a value without ``:`` is an error."""
    headers: dict = {}
    for value in values or ():
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise ReportError(f"--header {redact_header(value)!r} is not 'Name: value'")
        if any(c in name + rest for c in "\r\n\0"):
            raise ReportError(f"--header {name.strip()!r}: a header cannot hold line breaks")
        headers[name.strip()] = rest.strip()
    return headers


def redact_header(value: str) -> str:
    """A header as it may be printed: its name, never its value (a header name alone is shown as typed)."""
    name, sep, _ = value.partition(":")
    if sep:
        return f"{name}: ***"
    return value if re.fullmatch(r"[A-Za-z0-9-]{1,40}", value) else "***"


def split_url(url: str) -> tuple:
    """``http://user:pw@host:3200/x`` -> (``http://host:3200/x``, (user, pw) or None, what may be printed)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # raises ValueError for a port out of range
    except ValueError as error:
        raise ReportError(f"{redact_url(url)} is not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ReportError(f"{redact_url(url)} is not an http:// or https:// URL with a host")
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")).rstrip("/")
    auth = None
    if parts.username is not None or parts.password is not None:
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
    shown = bare if auth is None else bare.replace("://", f"://{auth[0]}:***@", 1)
    return bare, auth, shown


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, even when it does not parse."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user = userinfo.split(":", 1)[0]
        authority = f"{user}:***@{host}"
    return f"{scheme}://{authority}{slash}{path}"


def _origin(url) -> tuple:
    return (url.scheme, url.host, url.port)


def _first_line(text: str, width: int = 200) -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[: width - 1] + "…"
    return ""


class Answer:
    """A finished answer: status, reason, headers and at most ``MAX_ANSWER`` bytes of body."""

    def __init__(self, status: int, reason: str, content: bytes, encoding: Optional[str]) -> None:
        self.status_code = status
        self.reason_phrase = reason
        self.content = content
        self.encoding = encoding or "utf-8"

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, "replace")


class HttpClient:
    def __init__(self, base_url: str, headers: list, timeout_s: float) -> None:
        import httpx

        self._httpx = httpx
        self.base_url, auth, self.shown_url = split_url(base_url)
        self.timeout_s = timeout_s
        self._headers = parse_headers(headers)
        self._auth = auth
        self._origin = _origin(httpx.URL(self.base_url))
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def _fetch(self, url: str, params: Optional[dict], accept: str, deadline: float) -> Answer:
        """Follows redirects by hand: the user's headers and credentials go to their origin only."""
        httpx = self._httpx
        request = self._client.build_request(
            "GET", url, params=params, headers={"Accept": accept, "Accept-Encoding": "gzip, deflate"}
        )
        for _ in range(MAX_REDIRECTS + 1):
            if _origin(request.url) == self._origin:
                request.headers.update(self._headers)
                if self._auth is not None:
                    request.headers["Authorization"] = httpx.BasicAuth(*self._auth)._auth_header
            response = self._client.send(request, stream=True)
            try:
                if response.is_redirect and response.next_request is not None:
                    request = response.next_request
                    for name in list(self._headers) + ["Authorization", "Cookie"]:
                        request.headers.pop(name, None)
                    continue
                content = _read_bounded(response, deadline, self.shown(str(request.url)))
                return Answer(response.status_code, response.reason_phrase, content, response.encoding)
            finally:
                response.close()
        raise ReportError(f"{self.shown(url)} redirected more than {MAX_REDIRECTS} times")

    def shown(self, url: str) -> str:
        """A URL as it may be printed: no credentials, no query string."""
        return redact_url(url.split("?", 1)[0])

    def _get(self, path: str, params: Optional[dict], accept: str) -> Answer:
        httpx = self._httpx
        url = self.base_url + path
        shown = self.shown_url + path
        deadline = time.monotonic() + self.timeout_s
        results: "queue.Queue" = queue.Queue(1)

        def work() -> None:
            try:
                results.put((True, self._fetch(url, params, accept, deadline)))
            except BaseException as error:  # handed to the waiting thread
                results.put((False, error))

        # The request runs in a helper thread so that the whole of it, however
        # slowly the bytes arrive, is bounded by --timeout.
        threading.Thread(target=work, name="otel-slowstack-http", daemon=True).start()
        try:
            ok, value = results.get(timeout=self.timeout_s + 0.5)
        except queue.Empty:
            raise ReportError(f"{shown} did not answer within {self.timeout_s:g} s (raise --timeout?)") from None
        if not ok:
            error = value
            if isinstance(error, ReportError):
                raise error
            if isinstance(error, httpx.TimeoutException):
                raise ReportError(f"{shown} did not answer within {self.timeout_s:g} s (raise --timeout?)") from None
            if isinstance(error, httpx.ConnectError):
                raise ReportError(f"cannot reach {self.shown_url}: {_reason(error)}") from None
            if isinstance(error, (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError)):
                raise ReportError(f"request to {shown} failed: {_reason(error)}") from None
            raise error
        response = value
        if response.status_code in (401, 403):
            raise HttpStatusError(
                f"{shown} answered {response.status_code} {response.reason_phrase}: "
                "give credentials with --header 'Authorization: Bearer TOKEN'",
                response.status_code,
                response.text,
            )
        if response.status_code >= 400:
            detail = _first_line(response.text)
            raise HttpStatusError(
                f"{shown} answered {response.status_code} {response.reason_phrase}" + (f": {detail}" if detail else ""),
                response.status_code,
                response.text,
            )
        return response

    def get_json(self, path: str, params: Optional[dict] = None) -> Any:
        response = self._get(path, params, "application/json")
        from .file import read_documents

        try:
            documents = read_documents(response.content)
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            failure = ReportError(
                f"{self.shown_url}{path} did not answer in JSON ({_first_line(response.text, 80)!r}): "
                "is this the backend's query port?"
                + (" (nested too deeply)" if isinstance(error, RecursionError) else "")
            )
            failure.not_json = True  # type: ignore[attr-defined]
            raise failure from None
        if len(documents) == 1:
            return documents[0]
        if not documents:
            failure = ReportError(f"{self.shown_url}{path} answered nothing: is this the backend's query port?")
            failure.not_json = True  # type: ignore[attr-defined]
            raise failure
        return documents  # several JSON values one after another: Jaeger v3's streamed chunks

    def get_text(self, path: str) -> str:
        return self._get(path, None, "text/plain, */*").text


def _read_bounded(response, deadline: float, shown: str) -> bytes:
    """The body, decompressed here in bounded steps: a small gzip answer that
    inflates to gigabytes stops at ``MAX_ANSWER``, never held whole."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header, detected
    elif encoding in ("", "identity"):
        inflater = None
    else:
        raise ReportError(f"{shown} answered with a content-encoding this command does not read ({encoding})")
    content = bytearray()

    def too_big() -> ReportError:
        return ReportError(f"{shown} answered more than {MAX_ANSWER // MIB} MiB; ask for less (a smaller --page-size or --limit)")

    try:
        for chunk in response.iter_raw(64 * 1024):
            if time.monotonic() > deadline:
                raise ReportError(f"{shown} did not finish answering within the --timeout")
            while chunk:
                if inflater is None:
                    content += chunk
                    chunk = b""
                else:
                    content += inflater.decompress(chunk, MAX_ANSWER + 1 - len(content))
                    chunk = inflater.unconsumed_tail
                if len(content) > MAX_ANSWER:
                    raise too_big()
    except zlib.error as error:
        raise ReportError(f"{shown} answered a corrupt {encoding} body ({error})") from None
    return bytes(content)


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    # "[Errno 111] Connection refused" -> "connection refused"
    if "] " in text and text.startswith("[Errno"):
        text = text.split("] ", 1)[1]
    return redact_url(text[:1].lower() + text[1:])
