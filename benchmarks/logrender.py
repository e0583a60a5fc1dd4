"""
What rendering one per-connection log event costs: Twisted's text observer, netd's
text observer and netd's JSON observer, in one process, writing to /dev/null.

    python benchmarks/logrender.py [--events 20000] [--reps 3]

Prints CPU microseconds per event (best of the repetitions) and the ratio to Twisted's
text observer, measured in the same run (the machine may be noisy; the ratio holds).
"""

from __future__ import annotations

import argparse
import time

from twisted.logger import Logger, LogPublisher
from twisted.logger import textFileLogObserver as twistedText

from netd.logs.format import jsonFileLogObserver
from netd.logs.text import textFileLogObserver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with open("/dev/null", "w") as out:
        observers = {
            "twisted text": twistedText(out),
            "netd text": textFileLogObserver(out),
            "netd json": jsonFileLogObserver(out),
        }
        best: dict[str, float] = {}
        for _ in range(args.reps):
            for name, observer in observers.items():
                log = Logger(namespace="netd.admission.guard", observer=LogPublisher(observer))
                start = time.process_time()
                for _ in range(args.events):
                    log.info(
                        "{service} {peer} closed after {duration:.3f}s, {bytesIn} bytes in, "
                        "{bytesOut} bytes out: {reason}",
                        service="echo",
                        peer="127.0.0.1:40000",
                        duration=0.0012,
                        bytesIn=64,
                        bytesOut=64,
                        reason="client closed",
                    )
                used = (time.process_time() - start) / args.events * 1e6
                best[name] = min(best.get(name, used), used)
    for name, cost in best.items():
        print(f"{name:13s} {cost:6.1f} us/event  {cost / best['twisted text']:.2f}x")


if __name__ == "__main__":
    main()
