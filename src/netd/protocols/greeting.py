"""
Greeting: send a banner, then close.

The banner is text from the command line or config; it is encoded once, as UTF-8, and
ends with CRLF unless the operator ended it with a newline already.
"""

from __future__ import annotations

from twisted.internet.protocol import Protocol

from netd.plugin import Served, ServiceContext, ServiceFactory

__all__ = ["DEFAULT_MESSAGE", "Greeting", "banner", "buildGreeting"]

DEFAULT_MESSAGE = "Thank you for connecting"


def banner(message: str) -> bytes:
    """The bytes sent for C{message}: UTF-8, CRLF-terminated."""
    data = message.encode("utf-8")
    return data if data.endswith(b"\n") else data + b"\r\n"


class Greeting(Protocol):
    """Write the factory's banner and close."""

    def connectionMade(self) -> None:
        self.transport.write(self.factory.banner)
        self.transport.loseConnection()


def buildGreeting(context: ServiceContext) -> Served:
    factory = ServiceFactory(Greeting, context)
    factory.banner = banner(context.settings["message"])
    return Served(stream=factory)
