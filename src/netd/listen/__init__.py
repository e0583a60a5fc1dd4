"""
Listening: what a C{--listen} description means and the endpoint it becomes.
Listen descriptions, netd's own endpoints (UDP, inherited sockets) and TLS.
"""

__all__ = ["endpoint", "tls"]
