"""The HTTP API on ``http.port`` (SPEC section 8): ``api`` (routes, no I/O) and ``server`` (h11 on trio)."""
