"""The web page: ``GET /`` and its files under ``/static/``, served from memory with a strict CSP.

The page (``web/static/``) is plain HTML, CSS and ES modules; it talks to the same API as any
client (``/api/...`` with a bearer token) and to ``/api/stream``. Its files are read once, when
the app is built (:class:`Files`), so serving them costs no I/O and cannot block the loop; the
chart library (``web/static/vendor/``, copied from npm by ``make``, not committed) is served
when it was installed and missing otherwise, which the page notices and says.

Every answer carries the page's Content-Security-Policy (:data:`CSP`): scripts, styles and
connections from this origin only, no inline script or style, no plugins, no framing, no base
or form targets. User text is put on the page as text (``textContent``), never as markup, so the
policy is the second wall, not the first. Files are revalidated on each load (``no-cache`` with
an ``ETag``), so an upgraded engine is never shown with a stale script.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from quart import Response, request

from engine.errors import NotFound
from web.context import State
from web.spec import Param, Route, ok, problems

STATIC_DIR = Path(__file__).parent / "static"
INDEX = "index.html"
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True, slots=True)
class File:
    """One file of the page, as it is sent."""

    body: bytes
    content_type: str
    etag: str  # unquoted (werkzeug's ETags compare unquoted tags)


class Files:
    """The page's files by their name under ``static/`` (``js/app.js``), read once.

    Only regular files inside the folder are taken (no symlink out of it, no dot-files), so no
    name a request can spell reaches anything else on disk.
    """

    def __init__(self, folder: Path = STATIC_DIR) -> None:
        self._files: dict[str, File] = {}
        if not folder.is_dir():
            return
        root = folder.resolve()
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if any(part.startswith(".") for part in name.split("/")):
                continue
            if path.is_symlink() or not path.is_file() or root not in path.resolve().parents:
                continue
            body = path.read_bytes()
            kind = TYPES.get(path.suffix) or mimetypes.guess_type(name)[0]
            digest = hashlib.sha256(body).hexdigest()[:32]
            self._files[name] = File(body, kind or "application/octet-stream", digest)

    def get(self, name: str) -> File | None:
        """The file called ``name``, or None."""
        return self._files.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._files


def _send(file: File) -> Response:
    if file.etag in request.if_none_match:
        response = Response(b"", status=304)
    else:
        response = Response(file.body, content_type=file.content_type)
    response.headers.update(HEADERS)
    response.headers["ETag"] = f'"{file.etag}"'
    return response


def routes(files: Files) -> list[Route]:
    """``GET /`` and ``GET /static/{name}`` over ``files``."""

    async def index(state: State, user_id: None) -> Response:
        page = files.get(INDEX)
        if page is None:
            raise NotFound("the web page is not installed with this engine")
        return _send(page)

    async def static(state: State, user_id: None, name: str) -> Response:
        file = files.get(name)
        if file is None or name == INDEX:
            raise NotFound(f"no file {name!r} in the page")
        return _send(file)

    return [
        Route(
            "GET",
            "/",
            "/",
            index,
            "The web page: sign in, alerts, destinations, a live chart",
            auth=False,
            tag="page",
            responses={
                **ok(200, "the page", {"type": "string"}, "text/html"),
                **ok(304, "not modified since the ETag given in If-None-Match", None),
                **problems(404),
            },
        ),
        Route(
            "GET",
            "/static/{name}",
            "/static/<path:name>",
            static,
            "One of the page's files (scripts, styles, the chart library when installed)",
            auth=False,
            tag="page",
            path_params=(Param("name", {"type": "string"}, "a file name under static/"),),
            responses={
                **ok(200, "the file", {"type": "string"}, "*/*"),
                **ok(304, "not modified since the ETag given in If-None-Match", None),
                **problems(404),
            },
        ),
    ]
