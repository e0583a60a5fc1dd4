"""
netd: a modern inetd on Twisted.

One process serves the classic small network services (echo, discard, chargen,
daytime, time) and a few useful ones (greeting, logger, linelogger) on any Twisted
endpoint.  Protocols are Twisted plugins providing L{netd.interfaces.INetdProtocol}, so a
third-party package adds one by shipping a plugin module.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
