"""The one place transport errors become classified probe failures.

asyncio.TimeoutError / aiohttp.ServerTimeoutError   -> timeout
aiohttp.ClientConnectorDNSError, socket.gaierror     -> dns
aiohttp.ClientConnectorCertificateError, ssl errors  -> tls
ConnectionRefusedError (via ClientConnectorError)    -> refused
ConnectionResetError, ServerDisconnectedError,
  ClientPayloadError (body cut short)                -> reset
ClientPayloadError (body not in its Content-Encoding) -> protocol
aiohttp.TooManyRedirects, redirect to a bad URL      -> redirect
aiohttp.ClientResponseError (bad framing), ...       -> protocol
BodyTooLarge                                         -> too_large
anything else                                        -> error
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import ssl

import aiohttp

from monitor.results import FailureKind


class BodyTooLarge(Exception):
    def __init__(self, cap: int) -> None:
        super().__init__(f"body larger than {cap} bytes")
        self.cap = cap


class ProbeFailure(Exception):
    """Raised inside probe helpers to short-cut to a classified result."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def classify(exc: BaseException, *, timeout: float | None = None) -> tuple[FailureKind, str]:
    """(kind, sentence) for an exception raised while talking to a target."""
    if isinstance(exc, ProbeFailure):
        return exc.kind, exc.message
    if isinstance(exc, BodyTooLarge):
        return FailureKind.TOO_LARGE, f"sent a body larger than the {exc.cap} byte cap"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError | TimeoutError):
        limit = f" within {timeout:g}s" if timeout else ""
        return FailureKind.TIMEOUT, f"did not answer{limit}"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return FailureKind.REDIRECT, "redirected too many times"
    if isinstance(exc, aiohttp.InvalidUrlRedirectClientError | aiohttp.NonHttpUrlRedirectClientError):
        return FailureKind.REDIRECT, "redirected to a location that is not an http(s) URL"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FailureKind.DNS, "could not be resolved (DNS)"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return FailureKind.TLS, f"presented a certificate that failed verification: {_cert_reason(exc)}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError | aiohttp.ClientSSLError | ssl.SSLError):
        return FailureKind.TLS, "failed the TLS handshake"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _classify_os(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return FailureKind.RESET, "closed the connection before answering in full"
    if isinstance(exc, aiohttp.ClientPayloadError):
        if "content-encoding" in str(exc).lower():  # aiohttp keeps no typed cause for this one
            return FailureKind.PROTOCOL, "sent a body that does not decode as its Content-Encoding"
        return FailureKind.RESET, "cut the response body short"
    if isinstance(exc, aiohttp.ClientResponseError):
        return FailureKind.PROTOCOL, f"sent a malformed HTTP response ({_one_line(exc.message)})"
    if isinstance(exc, aiohttp.InvalidURL):
        return FailureKind.ERROR, "has an invalid URL"
    if isinstance(exc, socket.gaierror):
        return FailureKind.DNS, "could not be resolved (DNS)"
    if isinstance(exc, ConnectionRefusedError):
        return FailureKind.REFUSED, "refused the connection"
    if isinstance(exc, OSError):
        return _classify_os(exc)
    if isinstance(exc, aiohttp.ClientError):
        return FailureKind.PROTOCOL, f"failed at the HTTP level ({type(exc).__name__})"
    return FailureKind.ERROR, f"could not be probed ({type(exc).__name__})"


def _classify_os(exc: OSError) -> tuple[FailureKind, str]:
    if isinstance(exc, socket.gaierror):
        return FailureKind.DNS, "could not be resolved (DNS)"
    if isinstance(exc, ssl.SSLError):
        return FailureKind.TLS, "failed the TLS handshake"
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return FailureKind.REFUSED, "refused the connection"
    if isinstance(exc, ConnectionResetError) or exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return FailureKind.RESET, "reset the connection"
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return FailureKind.TIMEOUT, "did not accept the connection in time"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return FailureKind.REFUSED, "is unreachable (no route)"
    return FailureKind.ERROR, f"could not be reached ({exc.strerror or type(exc).__name__})"


def _one_line(message: str, limit: int = 120) -> str:
    """aiohttp's parser messages span lines and quote the target's bytes: keep the first line, short."""
    text = (message or "").strip()
    line = re.split(r":?\s*b['\"]", text.splitlines()[0])[0].rstrip(": ") if text else ""
    line = line or "no detail"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cert_reason(exc: aiohttp.ClientConnectorCertificateError) -> str:
    cert_error = exc.certificate_error
    reason = getattr(cert_error, "verify_message", None) or str(cert_error)
    return str(reason).split("(_ssl.c")[0].strip()
