"""
C{--workers N}: N processes serving every listener, supervised by the one netd started.

B{Sockets.}  The parent binds every listener itself, as a single netd does (privileged
ports before twistd drops privileges, C{tcp:0}, busy-port errors), and never serves
one: each worker inherits the descriptors and adopts them, the mechanism of systemd
socket activation.  The kernel hands each new connection (or datagram) to whichever
worker takes it first.  (L{netd.workers.sockets})

B{Supervision.}  A worker that dies is restarted after a backoff (0.5 s, doubling on
each quick failure, at most 30 s).  SIGTERM on the parent is a SIGTERM to every worker,
each draining its connections as a single netd does; the parent waits at most the
shutdown timeout plus 5 seconds, then kills what is left.  A worker whose parent dies
stops by itself.  (L{netd.workers.supervisor})

B{Reload.}  SIGHUP goes to the parent, which re-reads and validates the file (a bad
one keeps everything), binds new listeners, closes dropped ones and keeps the others
open.  It then replaces its workers slot by slot: each new worker serves the new
listener set, and the worker it replaces stops gracefully once the new one is ready,
so no connection waiting on a kept listener is lost.  Connections still open on a
replaced worker get the shutdown timeout to finish, as on SIGTERM.  The workers read
the configuration the parent parsed (passed through a pipe), never the file itself.
SIGUSR1 (and SIGHUP) reopen output files in every worker.

B{Limits.}  Each worker enforces C{max-connections}, C{max-per-source} and
C{rate}/C{burst} for its own connections, so a service may hold up to N times
C{max-connections} in all.  What bounds UDP reflection is divided between the workers
instead: a source's C{udp-rate} and C{udp-burst}, and the daemon's C{udp-reply-budget},
so the workers together never answer more than one netd would.  Every worker knows the
daemon's UDP service ports (they are the same sockets), so none answers them.

B{Logs and metrics.}  Workers log JSON lines that the parent publishes in its own log,
marked C{worker N (pid P):}.  Each worker reports its counters to the parent over a pipe
whenever they change (at most twice a second); the parent serves C{--admin}, whose
C{/metrics} and C{/services} show each service's totals over all workers, plus
C{netd_workers} and C{netd_worker_restarts_total}.  (L{netd.workers.metrics})

C{--workers 1}, the default, is netd as before: one process, no supervisor.
"""

__all__ = ["metrics", "parent", "sockets", "spawner", "spec", "supervisor", "worker"]
