"""
Configuration: the command line and the TOML file both build one L{netd.config.model}.
Options, config file, the daemon model and the per-service policy keys live here.
"""

__all__ = ["file", "model", "options", "policy"]
