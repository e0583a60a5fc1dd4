"""
C{netd client}: a command-line client for the classic small services.

One command talks to echo, discard, chargen, daytime, time and the loggers over TCP, UDP,
TLS or a unix socket, checks what the server sends against the RFCs, and reports timing.
It works against any inetd, not only netd.  Plain blocking sockets with timeouts: a
one-shot command line tool has nothing to gain from a reactor.
"""

from netd.client.cli import main

__all__ = ["main"]
