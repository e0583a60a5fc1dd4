"""
Fast path: netd's own Linux reactor and transports, Twisted's with less work per event.
Selected by L{netd.reactor}; Twisted's stock reactor stays a correct, slower fallback.
"""

__all__ = ["reactor", "transport"]
