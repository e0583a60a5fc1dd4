"""
Listening: what a C{--listen} description means and the endpoint it becomes.
Listen descriptions, netd's endpoints, sockets inherited from systemd, and TLS.
"""

__all__ = ["endpoint", "inherited", "tls"]
