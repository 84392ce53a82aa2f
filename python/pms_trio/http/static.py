"""The web console's static files (SPEC section 8, ``GET /``): the page and its scripts and styles.

Owns ``GET``/``HEAD`` of ``/`` (``index.html``) and ``/static/NAME``. The files live in the package
folder ``pms_trio/web`` and are installed with the wheel. Only names listed in that folder at start
(plain file names, no sub-folders) are served, looked up in a dict: the request path is never joined
to a file system path, so ``..``, ``%2e%2e``, ``%2f`` or an absolute path cannot reach another file
(each is simply an unknown name: 404). No I/O beyond listing the folder once and ``stat``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .responses import FileResponse, Response, error_response

FOLDER = Path(__file__).resolve().parent.parent / "web"
PREFIX = "/static/"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
# The page loads nothing from elsewhere; it talks to the signaling port (another origin: ws:/wss:)
# and to this server. No inline script, no eval: text from the server can never run as code.
SECURITY_HEADERS = (
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
     "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; object-src 'none'; "
     "base-uri 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def _listing(folder: Path) -> dict[str, Path]:
    """Plain file names directly in ``folder`` with a known type -> their paths."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return {}
    return {e.name: Path(e.path) for e in entries
            if e.is_file(follow_symlinks=False) and os.path.splitext(e.name)[1] in CONTENT_TYPES}


FILES = _listing(FOLDER)


def owns(path: str) -> bool:
    """``path`` is the request target's path, not decoded, without its trailing slash."""
    return path in ("/", "/index.html", "/static") or path.startswith(PREFIX)


def handle(method: str, path: str, files: dict[str, Path] | None = None) -> Response | FileResponse:
    files = FILES if files is None else files
    if path in ("/", "/index.html"):
        name = "index.html"
    elif path.startswith(PREFIX):
        name = path[len(PREFIX):]
    else:
        name = ""
    file = files.get(name) if name else None
    if file is None:
        return error_response(404, f"no such file: {path}")
    if method not in ("GET", "HEAD"):
        return error_response(405, f"{path} answers GET only")
    try:
        size = file.stat().st_size
    except OSError:
        return error_response(404, f"no such file: {path}")
    content_type = CONTENT_TYPES[os.path.splitext(name)[1]]
    return FileResponse(200, str(file), 0, size, content_type, SECURITY_HEADERS)
