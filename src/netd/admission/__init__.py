"""
Admission: who may connect and how much, decided per connection and per datagram.
Access lists, rate and concurrency limits, the PROXY header, and the stream and datagram guards.
"""

__all__ = ["access", "datagram", "guard", "proxyheader", "ratelimit", "rules"]
