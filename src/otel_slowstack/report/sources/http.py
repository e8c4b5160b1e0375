"""One HTTP client for the backend sources: headers, timeouts, and errors
turned into one line the user can act on (never a traceback)."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import ReportError


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
            raise ReportError(f"--header {value!r} is not 'Name: value'")
        headers[name.strip()] = rest.strip()
    return headers


def _first_line(text: str, width: int = 200) -> str:
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= width else line[: width - 1] + "…"
    return ""


class HttpClient:
    def __init__(self, base_url: str, headers: list, timeout_s: float) -> None:
        import httpx

        self._httpx = httpx
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.Client(
            headers=parse_headers(headers), timeout=httpx.Timeout(timeout_s), follow_redirects=True
        )

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: Optional[dict], accept: str) -> Any:
        httpx = self._httpx
        url = self.base_url + path
        try:
            response = self._client.get(url, params=params, headers={"Accept": accept})
        except httpx.TimeoutException:
            raise ReportError(f"{url} did not answer within {self.timeout_s:g} s (raise --timeout?)") from None
        except httpx.ConnectError as error:
            raise ReportError(f"cannot reach {self.base_url}: {_reason(error)}") from None
        except httpx.HTTPError as error:
            raise ReportError(f"request to {url} failed: {_reason(error)}") from None
        if response.status_code in (401, 403):
            raise HttpStatusError(
                f"{url} answered {response.status_code} {response.reason_phrase}: "
                "give credentials with --header 'Authorization: Bearer TOKEN'",
                response.status_code,
                response.text,
            )
        if response.status_code >= 400:
            detail = _first_line(response.text)
            raise HttpStatusError(
                f"{url} answered {response.status_code} {response.reason_phrase}" + (f": {detail}" if detail else ""),
                response.status_code,
                response.text,
            )
        return response

    def get_json(self, path: str, params: Optional[dict] = None) -> Any:
        response = self._get(path, params, "application/json")
        try:
            return response.json()
        except ValueError:
            error = ReportError(
                f"{self.base_url}{path} did not answer in JSON ({_first_line(response.text, 80)!r}): "
                "is this the backend's query port?"
            )
            error.not_json = True  # type: ignore[attr-defined]
            raise error from None

    def get_text(self, path: str) -> str:
        return self._get(path, None, "text/plain, */*").text


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    # "[Errno 111] Connection refused" -> "connection refused"
    if "] " in text and text.startswith("[Errno"):
        text = text.split("] ", 1)[1]
    return text[:1].lower() + text[1:]
