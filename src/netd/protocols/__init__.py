"""
The built-in services, one small module per family.

Each module ends with C{build*} functions, the builders named by the built-in plugins
in C{twisted/plugins/netd_builtins.py}.
"""

__all__: list[str] = []
