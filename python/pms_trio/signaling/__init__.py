"""WebSocket signaling (SPEC section 3): ``protocol`` (sans-IO), ``handlers`` (requests -> core
commands) and ``server`` (the trio-websocket adapter)."""
