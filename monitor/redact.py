"""Secrets are shown as a prefix and a short hash, never in full."""

from __future__ import annotations

import hashlib
import re

_KNOWN_PREFIXES = re.compile(
    r"^(sk_live_|sk_test_|rk_live_|rk_test_|whsec_|sbp_|sb_secret_|sb_publishable_|AKIA|ASIA|xox[abp]-|eyJ)"
)


def fingerprint(secret: str) -> str:
    """`sk_live_…#1a2b3c4d`: enough to find the key in a vault, useless to an attacker."""
    digest = hashlib.sha256(secret.encode()).hexdigest()[:8]
    match = _KNOWN_PREFIXES.match(secret)
    prefix = match.group(1) if match else secret[:4] if len(secret) >= 16 else ""
    return f"{prefix}…#{digest}"


class Secret:
    """A configured secret. str() and repr() never reveal it; `reveal()` does, on purpose."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({fingerprint(self._value)!r})"

    __str__ = __repr__


_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def safe_url(url: str) -> str:
    """A URL fit for logs and reports: no userinfo, no query string, no fragment."""
    url = _URL_USERINFO.sub("", url)
    for sep in ("?", "#"):
        url = url.split(sep, 1)[0]
    return url
