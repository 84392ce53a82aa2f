"""The two error directions of the SIP layer (STYLE 4): :class:`SipParseError` is the peer's mistake
(answered with its ``status_hint`` when the message can be addressed, else dropped);
:class:`LocalProtocolError` is ours (a bug). Imports only ``textframe``, whose
:class:`~pms_trio.textframe.RemoteProtocolError` is the one name for a peer's mistake in RTSP and SIP."""

from __future__ import annotations

from ..textframe import RemoteProtocolError


class SipParseError(RemoteProtocolError):
    """The peer sent something we cannot read. ``status_hint`` is the answer (400, 413, 505) when it
    was a request whose Via/From/To/Call-ID/CSeq could be read (``headers`` then holds them, see
    :func:`error_response`); otherwise the message is dropped."""


class LocalProtocolError(Exception):
    """We asked for something SIP cannot express (a header value with a newline, a status of 42).
    A bug in the caller, never the peer's fault."""
