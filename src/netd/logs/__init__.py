"""
Logs: netd's own log output and the line logger's durable file.
Log line formats, rate-limited warnings, and the group-committed line log.
"""

__all__ = ["format", "output", "settings", "throttled"]
