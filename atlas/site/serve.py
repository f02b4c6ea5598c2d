"""A local preview of a built site: Python's ``http.server`` on 127.0.0.1, optionally under
a base path, so the site is seen as a static host will serve it."""

from __future__ import annotations

import functools
import http.server
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import AtlasError


def normal_base(base: str) -> str:
    """Return a base path as /a/b/ (or /)."""
    parts = [p for p in base.split("/") if p]
    return "/" + "".join(f"{p}/" for p in parts)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serve the site's files under the base path; anything else is not found."""

    base = "/"

    def translate_path(self, path: str) -> str:
        route = unquote(urlsplit(path).path)
        if not route.startswith(self.base) and route + "/" != self.base:
            return str(Path(self.directory) / ".no-such-file")
        return super().translate_path("/" + route[len(self.base) :])

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/" and self.base != "/":
            self.send_response(302)
            self.send_header("Location", self.base)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args) -> None:  # quiet: the URL was printed once
        pass


def make_server(site: Path, port: int, base: str) -> http.server.ThreadingHTTPServer:
    """Return a server of the site on 127.0.0.1:port under base (not yet serving)."""
    if not (site / "index.html").is_file():
        raise AtlasError(f"{site} holds no atlas (no index.html); build one with `atlas build`")
    handler = type("Handler", (_Handler,), {"base": normal_base(base)})
    try:
        return http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), functools.partial(handler, directory=str(site))
        )
    except OSError as exc:
        raise AtlasError(
            f"cannot serve on 127.0.0.1:{port}: {exc.strerror}; choose another with --port"
        ) from None


def url(server: http.server.ThreadingHTTPServer, base: str) -> str:
    """Return the address where the site's index is."""
    return f"http://127.0.0.1:{server.server_address[1]}{normal_base(base)}"
