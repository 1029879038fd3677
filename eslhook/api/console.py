"""``/ui/``: the operator console, static files shipped in the package (eslhook/ui/).

The page is plain HTML, CSS and JavaScript (no build step, nothing fetched from
elsewhere) that talks only to the documented REST API with the operator's token.
Every file goes out with a Content-Security-Policy that allows only this origin
and no inline script or style, ``X-Frame-Options: DENY`` (no clickjacking) and
no referrer; the script renders every value as text, never as markup.
"""

from __future__ import annotations

from importlib import resources

import falcon

from .context import ApiContext

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
CONTENT_SECURITY_POLICY = ("default-src 'self'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'; object-src 'none'")
INDEX = "index.html"


def console_files() -> dict[str, tuple[str, bytes]]:
    """name -> (content type, bytes) of every servable file in eslhook/ui, read once."""
    files = {}
    for entry in resources.files("eslhook").joinpath("ui").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (CONTENT_TYPES[suffix], entry.read_bytes())
    return files


class ConsoleFiles:
    def __init__(self, files: dict[str, tuple[str, bytes]]):
        self.files = files

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str = INDEX) -> None:
        if name not in self.files:      # only the shipped files: no path is ever opened
            raise falcon.HTTPNotFound()
        resp.content_type, resp.data = self.files[name]
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Referrer-Policy", "no-referrer")


class ConsoleRoot:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPMovedPermanently("/ui/")


def install(app: falcon.App, context: ApiContext) -> None:
    files = ConsoleFiles(console_files())
    app.add_route("/ui", ConsoleRoot())
    app.add_route("/ui/", files)
    app.add_route("/ui/{name}", files)
