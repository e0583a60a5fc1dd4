"""
The admin HTTP interface: C{/healthz}, C{/metrics}, C{/services}, and the tutorial's
C{/hello} and C{/localtime}, served by C{twisted.web} in netd's own reactor.

Started by L{netd.tap.makeService} when C{--admin} (or the C{admin} config key) is given.
"""

from netd.admin.service import AdminService

__all__ = ["AdminService"]
