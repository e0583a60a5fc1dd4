"""
C{python -m netd.bench ARGS}: the same as C{netd bench ARGS}.

The guard matters: worker processes are started with C{spawn}, which re-imports this
module as C{__mp_main__} in every child, and a child must not start a benchmark of its own.
"""

import sys

from netd.bench.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
