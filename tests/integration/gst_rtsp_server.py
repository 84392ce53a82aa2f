"""gst-rtsp-server (Debian ``gir1.2-gst-rtsp-server-1.0``), an RTSP server written by others, for
the cascade's RTSP client to pull from. Run with the system Python (``/usr/bin/python3``: PyGObject
is a Debian package, not a pip one):

    /usr/bin/python3 gst_rtsp_server.py --port 0 --mount /cam --colour 0x0000ff [--auth digest:USER:PASS]

It serves a solid colour as H.264 (OpenH264, from ``gstreamer1.0-plugins-bad``) and a tone as PCMA at ``rtsp://127.0.0.1:PORT/MOUNT``, prints
``PORT <n>`` once it listens, and runs until stdin closes (so it never outlives the test).
"""

from __future__ import annotations

import argparse
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--colour", default="0x0000ff")
    parser.add_argument("--auth", default="", help="basic:USER:PASS or digest:USER:PASS")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    colour = int(args.colour, 16) | 0xFF000000
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=solid-color foreground-color={colour} "
        "! video/x-raw,width=320,height=240,framerate=30/1 "
        "! videoconvert ! openh264enc gop-size=30 complexity=low ! h264parse "
        "! rtph264pay name=pay0 pt=96 config-interval=1 "
        "audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=8000,channels=1 ! alawenc "
        "! rtppcmapay name=pay1 pt=8 )")
    factory.set_shared(True)
    if args.auth:
        method, user, password = args.auth.split(":", 2)
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if method == "digest":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(user, password, token)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(Gst.Structure.new_empty("user"))
        permissions.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        permissions.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.mount, factory)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        sys.exit("cannot listen")
    print(f"PORT {server.get_bound_port()}", flush=True)

    def watch_stdin() -> None:
        sys.stdin.read()
        GLib.idle_add(loop.quit)

    threading.Thread(target=watch_stdin, daemon=True).start()
    loop.run()


if __name__ == "__main__":
    main()
