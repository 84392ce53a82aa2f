"""The web console's static route (``pms_trio.http.static``): names are looked up, never joined to
a path, so only the package's own files are served, with their content types."""

from __future__ import annotations

from pathlib import Path

import pytest

from pms_trio.http import static
from pms_trio.http.responses import FileResponse


def test_the_package_ships_the_page() -> None:
    for name in ("index.html", "app.js", "signaling.js", "style.css"):
        assert name in static.FILES, sorted(static.FILES)
    assert not [n for n in static.FILES if n.endswith(".py")]


@pytest.mark.parametrize(("path", "ctype"), [("/", "text/html; charset=utf-8"),
                                             ("/static/app.js", "text/javascript; charset=utf-8"),
                                             ("/static/style.css", "text/css; charset=utf-8")])
def test_known_files_are_served_with_their_type(path: str, ctype: str) -> None:
    r = static.handle("GET", path)
    assert isinstance(r, FileResponse) and r.status == 200 and r.content_type == ctype
    assert r.length == Path(r.path).stat().st_size > 0
    assert ("X-Content-Type-Options", "nosniff") in r.headers


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/..%2fapp.py", "/static/%2e%2e/app.py",
                                  "/static//etc/passwd", "/static/", "/static/sub/app.js", "/static/.",
                                  "/static/app.js/", "/static/app.js?x", "/static/index.html/.."])
def test_anything_else_is_404(path: str) -> None:
    assert static.handle("GET", path).status == 404


def test_only_get_and_head() -> None:
    assert static.handle("POST", "/").status == 405
    assert static.handle("HEAD", "/static/app.js").status == 200


def test_listing_skips_folders_links_and_unknown_types(tmp_path: Path) -> None:
    (tmp_path / "a.js").write_text("x")
    (tmp_path / "b.py").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.js").write_text("x")
    (tmp_path / "link.js").symlink_to("/etc/passwd")
    files = static._listing(tmp_path)
    assert sorted(files) == ["a.js"]
    assert static.handle("GET", "/static/a.js", files).status == 200
    assert static.handle("GET", "/static/link.js", files).status == 404
