"""
The Twisted tutorial's tiny REST interface, as a plain WSGI application (PEP 3333, no
framework): C{GET /hello?name=X} greets in HTML, C{GET /localtime} answers in XML.

It runs in a thread pool under L{twisted.web.wsgi.WSGIResource}, and is testable alone
with a dictionary for C{environ}.  The time comes from a clock passed in.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ALLOWED", "makeApplication"]

#: The methods every route answers; anything else is 405 with this as C{Allow}.
ALLOWED = "GET, HEAD"
HTML = "text/html; charset=utf-8"
XML = "application/xml"
TEXT = "text/plain; charset=utf-8"

Route = Callable[[WSGIEnvironment, Callable[[], float]], tuple[str, str]]


def hello(environ: WSGIEnvironment, seconds: Callable[[], float]) -> tuple[str, str]:
    """A greeting; the name is HTML-escaped, so it is only ever text on the page."""
    name = _query(environ).get("name", ["World"])[0]
    page = (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8"><title>Hello</title></head>\n'
        f"<body><p>Hello, {html.escape(name)}!</p></body></html>\n"
    )
    return HTML, page


def localtime(environ: WSGIEnvironment, seconds: Callable[[], float]) -> tuple[str, str]:
    """The server's local time in C{time.ctime} form."""
    now = html.escape(time.ctime(seconds()))
    return XML, f'<?xml version="1.0" encoding="UTF-8"?>\n<localtime>{now}</localtime>\n'


ROUTES: dict[str, Route] = {"/hello": hello, "/localtime": localtime}


def makeApplication(seconds: Callable[[], float]) -> WSGIApplication:
    """The WSGI application, telling the time by C{seconds} (a reactor's C{seconds})."""

    def application(environ: WSGIEnvironment, startResponse: StartResponse) -> Iterable[bytes]:
        route = ROUTES.get(environ.get("PATH_INFO", ""))
        if route is None:
            return _reply(environ, startResponse, "404 Not Found", TEXT, "Not Found\n")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _reply(
                environ,
                startResponse,
                "405 Method Not Allowed",
                TEXT,
                "Method Not Allowed\n",
                [("Allow", ALLOWED)],
            )
        contentType, body = route(environ, seconds)
        return _reply(environ, startResponse, "200 OK", contentType, body)

    return application


def _query(environ: WSGIEnvironment) -> dict[str, list[str]]:
    """
    The query parameters.  WSGI hands over the raw bytes as latin-1 text; they are read
    back as UTF-8, as browsers send them.  An empty value counts as absent.
    """
    raw = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace")
    return parse_qs(raw)


def _reply(
    environ: WSGIEnvironment,
    startResponse: StartResponse,
    status: str,
    contentType: str,
    text: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """Start the response; the body, except for C{HEAD}, which gets its headers only."""
    body = text.encode("utf-8")
    headers = [("Content-Type", contentType), ("Content-Length", str(len(body))), *(extra or [])]
    startResponse(status, headers)
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
