"""
C{netd import xinetd|inetd FILE}: existing inetd configurations turned into netd's TOML.

Parsers for each format (L{netd.importers.xinetdconf}, L{netd.importers.inetdconf}) feed
converters (L{netd.importers.xinetd}, L{netd.importers.inetd}) that build one common model
(L{netd.importers.model}), which L{netd.importers.writer} prints; L{netd.importers.cli} is
the command line.
"""

__all__: list[str] = []
