"""
The twistd plugin: C{twistd netd}.

Deliberately tiny and lazy: twistd imports every plugin module on each start, and
nothing here may import the reactor.  C{netd.tap} is loaded only when netd is run.
"""

from twisted.application.service import ServiceMaker

netd = ServiceMaker(
    "netd",
    "netd.tap",
    "A modern inetd: echo, discard, chargen, daytime, time, greeting and loggers",
    "netd",
)
