"""
Port forwarding (xinetd's C{redirect}): each admitted connection relayed to a backend,
optionally announced with a PROXY header.
"""

__all__: list[str] = []
