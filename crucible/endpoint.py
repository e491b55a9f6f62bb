"""Where the dispatcher is and which token to send: the arguments, else ``CRUCIBLE_URL`` and
``CRUCIBLE_TOKEN`` (the CLI's variables), else the local default."""

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping

DEFAULT_URL = "http://127.0.0.1:8080"
URL_VARIABLE = "CRUCIBLE_URL"
TOKEN_VARIABLE = "CRUCIBLE_TOKEN"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Token:
    """A bearer token that never shows itself: its repr, and any reprs containing it, say
    ``***``; ``redact`` takes it out of text that came from elsewhere."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "Token('***')"

    __str__ = __repr__

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        return text.replace(self._value, "***")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    url: str
    """The base URL, without a trailing slash."""
    origin: str
    """``scheme://host[:port]``: what a request target is appended to."""
    scheme: str
    host: str
    port: int
    base_path: str
    """A path prefix (a dispatcher behind a proxy at ``/crucible``); '' for none."""
    token: Token | None

    @classmethod
    def resolve(cls, url: str | None, token: str | None) -> "Endpoint":
        """From the arguments, else the environment. ``token=""`` sends none, whatever the
        environment says."""
        text = (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
        parts = urllib.parse.urlsplit(text)
        if parts.username is not None or parts.password is not None:
            # Not echoed: it holds a credential. The token goes in its own argument.
            raise ValueError("the URL must not hold credentials; pass token= instead")
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {text!r}")
        secret = os.environ.get(TOKEN_VARIABLE) if token is None else token
        return cls(
            url=text,
            origin=f"{parts.scheme}://{parts.netloc}",
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[parts.scheme],
            base_path=parts.path.rstrip("/"),
            token=Token(secret) if secret else None,
        )

    def target(self, path: str, query: Mapping[str, str] | None = None) -> str:
        """The request target (path and query) of an API path."""
        return self.base_path + path + ("?" + urllib.parse.urlencode(query) if query else "")

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        found = {"Accept": "application/json", **(extra or {})}
        if self.token is not None:
            found["Authorization"] = f"Bearer {self.token.reveal()}"
        return found

    def redact(self, text: str) -> str:
        return text if self.token is None else self.token.redact(text)

    def describe(self, owner: str) -> str:
        """``owner``'s repr: the URL, and only whether there is a token."""
        return f"{owner}(url={self.url!r}, token={'***' if self.token else None})"
