"""
Addresses as text for logs, without ever asking a resolver.

Peers are written as the literal address the kernel gave (C{127.0.0.1:5000},
C{[::1]:5000}): reverse DNS would let any client stall the daemon on a slow resolver.
"""

from __future__ import annotations

from typing import Any

__all__ = ["formatAddress", "transportName"]


def formatAddress(address: Any) -> str:
    """
    C{host:port} for IP addresses (an L{IAddress} or a datagram's C{(host, port)}),
    C{[host]:port} for IPv6, the path for unix sockets.
    """
    if isinstance(address, tuple):
        host, port = address[0], address[1]
    else:
        host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(address, "name", None)
    if name is not None:
        return name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else str(name)
    return str(address)


def transportName(address: Any) -> str:
    """C{TCP}, C{UDP} or C{UNIX}, from a host address."""
    kind = getattr(address, "type", None)
    if kind:
        return str(kind)
    return "UNIX" if hasattr(address, "name") else type(address).__name__
