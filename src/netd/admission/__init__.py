"""
Admission: who may connect and how much, decided per connection and per datagram.
The policy value, access lists, limits, the PROXY header, the stream and datagram guards.
"""

__all__ = ["access", "datagram", "guard", "policy", "proxyheader", "ratelimit", "rules"]
