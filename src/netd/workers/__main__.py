"""
C{python -m netd.workers}: a worker process, as its parent netd starts it (see
L{netd.workers.spawner}); not meant to be run by hand.
"""

from __future__ import annotations

import os
import sys

from netd.workers.spec import WORKER_VARIABLE


def bootstrap() -> None:
    """Claim the systemd sockets the parent passed on, then run the worker."""
    if WORKER_VARIABLE not in os.environ:
        sys.exit("netd.workers: worker processes are started by netd --workers N")
    if "LISTEN_FDS" in os.environ:
        # They are this process's now.  Set before anything imports
        # twisted.internet.endpoints, which reads these variables once, on import.
        os.environ["LISTEN_PID"] = str(os.getpid())
    from netd.workers.worker import main

    main()


if __name__ == "__main__":
    bootstrap()
