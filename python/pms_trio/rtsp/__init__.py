"""RTSP (SPEC section 4): ``protocol`` (sans-IO messages and framing), ``headers`` (Transport, Session,
Range, RTP-Info, URLs), ``session`` (the RFC 2326 Appendix A state machine) and ``sdp`` (DESCRIBE and
ANNOUNCE bodies)."""
