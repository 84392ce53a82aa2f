"""pms-trio: WebRTC SFU, RTSP server and GB28181 gateway in one process."""

__version__ = "0.1.0"
