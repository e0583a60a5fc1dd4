"""
C{netd bench}: a load generator for echo servers on loopback.

It measures what the independent C generator (C{bench/loadgen.c}) measures, in the same
modes and under the same JSON field names, so that the two can be run against one server
and cross-checked: request/response (C{rr}), bulk streaming (C{bulk}), connection rate
(C{connrate}), UDP (C{udp}) and many idle connections beside one active client
(C{idle}).  Every echoed byte is verified; latency percentiles are exact.
"""

from netd.bench.cli import main

__all__ = ["main"]
