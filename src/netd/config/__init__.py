"""
Configuration: the command line and the TOML file both build one L{netd.config.model}.
Options, config file, the daemon model, the policy keys and the daemon-wide settings.
"""

__all__ = ["file", "model", "options", "policy", "settings"]
