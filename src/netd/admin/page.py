"""
What the admin's own pages share: C{GET} and C{HEAD} only, no children (a path below a
page is 404), and one-line JSON bodies.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

__all__ = ["Page", "renderJSON"]


class Page(Resource):
    """
    An admin page: answers C{GET} (and so C{HEAD}); any other method gets 405 and an
    C{Allow} header (twisted.web would answer 501 to a method it does not know, C{PUT}).
    """

    allowedMethods = (b"GET", b"HEAD")

    def render(self, request: Request) -> bytes:
        if request.method not in self.allowedMethods:
            request.setResponseCode(405)
            request.setHeader(b"allow", b", ".join(self.allowedMethods))
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Method Not Allowed\n"
        return super().render(request)  # type: ignore[no-any-return]

    def render_GET(self, request: Request) -> bytes:
        raise NotImplementedError

    def render_HEAD(self, request: Request) -> bytes:
        """
        The headers of C{GET}, its length included, and no body (twisted.web would log
        a line for every HEAD whose resource returned one: a probe would flood the log).
        """
        body = self.render_GET(request)
        request.setHeader(b"content-length", b"%d" % (len(body),))
        return b""

    def getChild(self, path: bytes, request: Request) -> IResource:
        return notFound()


def renderJSON(request: Request, value: Any, code: int = 200) -> bytes:
    """
    Set C{code} and the JSON headers on C{request}; return C{value} as one line.

    Compact and ASCII-only, so a client (or C{grep}) reads one record per line whatever
    a service name or setting holds; values JSON cannot hold are written as text.
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value, separators=(",", ":"), default=str).encode("ascii") + b"\n"
