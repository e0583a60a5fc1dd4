"""
Coverage-guided fuzz targets (atheris, libFuzzer's engine) for the config parser and the
line splitter:

    python tests/adversarial/fuzz_atheris.py config -runs=20000
    python tests/adversarial/fuzz_atheris.py lines -runs=20000

Each runs a fixed number of inputs (C{-runs=N}; 20000 when not given, from a fixed
C{-seed} unless one is given, with the tokens of C{fuzz/TARGET.dict}) and exits 0 when
nothing unexpected was raised.  A failure prints the exception and the input, exits
non-zero and leaves a C{crash-*} file (where C{-artifact_prefix=} says).  The seeds in
C{fuzz/TARGET/} start the run when no corpus directory is given; the inputs libFuzzer
finds are then written nowhere.

The oracles are those of the hypothesis properties (L{tests.adversarial.test_fuzz}):
  - C{config}: the input, as UTF-8 text, gives a L{DaemonConfig} whose listeners' bind
    keys compute, or a L{ConfigFileError} of one line starting with the path;
  - C{lines}: a line logger behind its guard, fed the rest of the input in chunks whose
    sizes, the limit, C{ack} and the client's reads come from the input's first bytes,
    logs exactly the reference splitter's lines, drops the connection by the rules,
    keeps its buffer within the limit plus one read, and logs no error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
#: Runs when C{-runs=} is not given: the targets always end by themselves.
DEFAULT_RUNS = 20000


def configTarget(oracle: Any, helpers: Any) -> Callable[[bytes], None]:
    def test(data: bytes) -> None:
        helpers.checkConfig(oracle, data.decode("utf-8", "replace"))

    return test


def linesTarget(oracle: Any, helpers: Any) -> Callable[[bytes], None]:
    import atheris

    def test(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        maxLength = provider.ConsumeIntInRange(1, 64)
        ack = provider.ConsumeBool()
        window = provider.ConsumeIntInRange(0, 12) or None
        sizes = [provider.ConsumeIntInRange(1, 96) for _ in range(provider.ConsumeIntInRange(1, 6))]
        stream = provider.ConsumeBytes(provider.remaining_bytes())
        script: list[tuple[str, Any]] = []
        offset = turn = 0
        while offset < len(stream):
            size = sizes[turn % len(sizes)]
            script.append(("data", stream[offset : offset + size]))
            if size % 3 == 0:  # now and then the client reads its answers
                script.append(("read", None))
            offset += size
            turn += 1
        clock = helpers.ReactorClock()
        factory, guard = helpers.guardedStream(
            "linelogger", clock, **{"max-line-length": maxLength, "ack": ack}
        )

        def bufferBounded(run: Any) -> None:
            inner = run.protocol.wrappedProtocol
            if inner is not None:
                lastRead = len(run.delivered[-1]) if inner.paused and run.delivered else 0
                oracle.assertLessEqual(len(inner._buffer), maxLength + 1 + lastRead)

        with helpers.captured() as events:
            run = helpers.drive(
                factory, helpers.PEERS[0], script, clock, events, window, step=bufferBounded
            )
            pausedAtClose = not run.closedByServer and run.socket.producerState == "paused"
            helpers.checkLineLogger(oracle, run, maxLength, ack, pausedAtClose)
            helpers.checkGuardAfterClose(oracle, run, guard)
        oracle.assertEqual(helpers.failures(events), [])

    return test


TARGETS: dict[str, Callable[[Any, Any], Callable[[bytes], None]]] = {
    "config": configTarget,
    "lines": linesTarget,
}


def libFuzzerArguments(target: str, given: list[str]) -> list[str]:
    """
    libFuzzer's arguments: a fixed run count and seed and the target's dictionary of
    tokens (C{fuzz/TARGET.dict}) unless given and, without a corpus
    directory, the target's seeds as C{-seed_inputs} (a corpus directory would receive
    every input libFuzzer finds, and this one is in the tree).
    """
    arguments = list(given)
    flags = [arg for arg in given if arg.startswith("-")]
    if not any(flag.startswith("-runs=") for flag in flags):
        arguments.append(f"-runs={DEFAULT_RUNS}")
    if not any(flag.startswith("-seed=") for flag in flags):
        arguments.append("-seed=1")
    if not any(flag.startswith("-dict=") for flag in flags):
        arguments.append("-dict=" + os.path.join(HERE, "fuzz", f"{target}.dict"))
    if len(flags) == len(given) and not any(f.startswith("-seed_inputs=") for f in flags):
        seeds = os.path.join(HERE, "fuzz", target)
        files = sorted(os.path.join(seeds, name) for name in os.listdir(seeds))
        arguments.append("-seed_inputs=" + ",".join(files))
    return arguments


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [-runs=N] [libFuzzer flags]")
        return 2
    import atheris

    sys.path.insert(0, ROOT)
    with atheris.instrument_imports(include=["netd", "tomllib", "twisted.protocols.basic"]):
        import tomllib  # noqa: F401

        import twisted.protocols.basic  # noqa: F401

        import netd.admission.guard  # noqa: F401
        import netd.config.file  # noqa: F401
        import netd.listen.endpoint  # noqa: F401
        import netd.protocols.logger  # noqa: F401
    from twisted.trial.unittest import SynchronousTestCase

    from tests.adversarial import test_fuzz as helpers

    class Oracle(SynchronousTestCase):
        """Assertions outside a test run."""

        def runTest(self) -> None:
            """Never run: only the assertion methods are used."""

    target = TARGETS[argv[1]](Oracle(), helpers)
    helpers.registry()  # discover the plugins before the first input, not during it
    atheris.Setup([argv[0], *libFuzzerArguments(argv[1], argv[2:])], target)
    atheris.Fuzz()  # exits the process: 0 once the runs are done, non-zero on a failure
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
