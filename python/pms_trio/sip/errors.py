"""The two error directions of the SIP layer (STYLE 4): :class:`SipParseError` is the peer's mistake
(answered with its ``status_hint`` when the message can be addressed, else dropped);
:class:`LocalProtocolError` is ours (a bug). Imports nothing."""

from __future__ import annotations


class SipParseError(Exception):
    """The peer sent something we cannot read. ``status_hint`` is the answer (400, 413, 505) when it
    was a request whose Via/From/To/Call-ID/CSeq could be read (``headers`` then holds them, see
    :func:`error_response`); otherwise the message is dropped."""

    def __init__(self, message: str, status_hint: int = 400, *,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.status_hint = int(status_hint)
        self.headers = tuple(headers)

    def __repr__(self) -> str:
        return f"SipParseError({self.message!r}, {self.status_hint})"


class LocalProtocolError(Exception):
    """We asked for something SIP cannot express (a header value with a newline, a status of 42).
    A bug in the caller, never the peer's fault."""
