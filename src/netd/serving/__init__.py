"""
Serving: the daemon that starts each configured service on its listeners.
The daemon service, listener services, and systemd notification and watchdog.
"""

__all__ = ["daemon", "listener", "systemd"]
