"""
The pieces both importers share: address forms, the port table, the TOML writer and
the C{netd import} command line.
"""

from __future__ import annotations

import io
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netd.importers.addresses import HostName, forwardTarget, listenDescription, xinetdNetworks
from netd.importers.cli import main
from netd.importers.inetd import importInetd
from netd.importers.model import ImportedConfig, ImportedService, ImportFailure, Origin
from netd.importers.ports import PortTable, UnknownService
from netd.importers.writer import render
from netd.importers.xinetd import importXinetd

DATA = Path(__file__).resolve().parent / "importdata"

#: What random xinetd lines are made of: every attribute, each operator, odd values.
XINETD_ATTRIBUTES = [
    "type", "socket_type", "protocol", "wait", "user", "group", "server", "server_args",
    "port", "bind", "only_from", "no_access", "instances", "per_source", "cps", "redirect",
    "env", "passenv", "rlimit_as", "rlimit_cpu", "umask", "nice", "flags", "disable", "id",
    "enabled", "disabled", "banner_fail", "v6only", "log_type", "includedir",
]  # fmt: skip
XINETD_VALUES = [
    "INTERNAL", "UNLISTED", "stream", "dgram", "udp", "yes", "10.0.0.0 ::1", "host.example",
    "1 2", "UNLIMITED", "70000", "/bin/x", "A=b", "IPv6 NAMEINARGS", "", "²", "1 ²", "-3",
    "192.0.2.1 80", "1.2.{3,4}", "x",
]  # fmt: skip
XINETD_LINE = st.builds(
    "    {} {} {}".format,
    st.sampled_from(XINETD_ATTRIBUTES),
    st.sampled_from(["=", "+=", "-="]),
    st.sampled_from(XINETD_VALUES) | st.text(max_size=12),
)
#: What makes a random entry a service (after the random lines: the first value wins).
XINETD_BASE = ["    socket_type = stream", "    wait = no", "    user = u", "    server = /bin/x"]
INETD_WORDS = [
    "echo", "chargen", "7", "stream", "dgram", "tcp", "udp6", "tcp4,sndbuf=1k", "rpc/tcp",
    "wait", "nowait.10", "root", "nobody.nogroup", "internal", "/usr/sbin/tcpd", "in.x",
    "#<off>#", "127.0.0.1:", "host:echo", "*:", "²", "99999",
]  # fmt: skip


class AddressTests(SynchronousTestCase):
    def test_xinetdForms(self) -> None:
        """xinetd's address forms map to the networks xinetd matches."""
        cases = {
            "192.0.2.7": ["192.0.2.7/32"],
            "10.0.0.0": ["10.0.0.0/8"],
            "172.16.0.0": ["172.16.0.0/16"],
            "0.0.0.0": ["0.0.0.0/0"],
            "10.1": ["10.0.0.1/32"],
            "10.0.0.1/8": ["10.0.0.0/8"],
            "128.138.{1,2}": ["128.138.1.0/24", "128.138.2.0/24"],
            "10.{3}": ["10.3.0.0/16"],
            "::": ["::/0"],
            "2001:db8::7": ["2001:db8::7/128"],
            "2001:db8::/32": ["2001:db8::/32"],
        }
        self.assertEqual({token: xinetdNetworks(token) for token in cases}, cases)

    def test_namesAndGarbage(self) -> None:
        """Host and domain names raise HostName; malformed numbers raise ValueError."""
        for name in ("host.example", ".example.org", "localnet"):
            self.assertRaises(HostName, xinetdNetworks, name)
        for bad in ("300.1.2.3", "1.2.{300}", "1.2.{,}", "1::2::3", "1.2.3.4/40"):
            self.assertRaises(ValueError, xinetdNetworks, bad)

    def test_listenAndForward(self) -> None:
        """Listen and forward strings escape IPv6 colons; a forward to a name is refused."""
        self.assertEqual(listenDescription("udp", 69, "::1", False), "udp:69:interface=\\:\\:1")
        self.assertEqual(listenDescription("udp", 69, None, True), "udp:69:interface=\\:\\:")
        self.assertEqual(listenDescription("tcp", 7, None, True), "tcp6:7")
        self.assertEqual(forwardTarget("192.0.2.1", 80), "tcp:192.0.2.1:80")
        self.assertRaises(HostName, forwardTarget, "backend", 80)


class PortTableTests(SynchronousTestCase):
    def test_transportSpecificNames(self) -> None:
        """Names that differ between TCP and UDP (514: shell and syslog) are looked up per transport."""
        services = self.mktemp()
        Path(services).write_text("")
        table = PortTable(services)
        self.assertEqual((table.port("shell", "tcp"), table.port("syslog", "udp")), (514, 514))
        self.assertRaises(UnknownService, table.port, "shell", "udp")

    def test_fileReadOnlyWhenNeeded(self) -> None:
        """A missing services file matters only for a name netd's table lacks."""
        table = PortTable(self.mktemp())
        self.assertEqual(table.port("echo", "tcp"), 7)
        self.assertRaises(OSError, table.port, "other", "tcp")


class WriterTests(SynchronousTestCase):
    def test_awkwardStrings(self) -> None:
        """Quotes, backslashes, control characters and non-ASCII survive the round trip through tomllib, and comments stay comments."""
        config = ImportedConfig("in\nput", "inetd")
        argv = ["/bin/x", 'a "quoted" \\ arg', "tab\there", "bell\x07", "del\x7f", "é"]
        service = ImportedService(
            'we"ird name', Origin("f", 1), {"exec": argv, "listen": ["tcp:1"]}
        )
        service.source.append("f:1: line with \x1b[31m escape")
        config.services.append(service)
        text = render(config)
        self.assertEqual(tomllib.loads(text)["services"]['we"ird name']["exec"], argv)
        self.assertIn("# from f:1: line with \\x1b[31m escape", text)

    def test_keyOrder(self) -> None:
        """Keys are written in a fixed order: what runs, where, whether, how, then the policy keys."""
        service = ImportedService("s", Origin("f", 1), {"deny": ["10.0.0.0/8"], "user": "u",
                                  "listen": ["tcp:1"], "exec": ["/bin/x"], "enabled": False})  # fmt: skip
        config = ImportedConfig("f", "xinetd", [service])
        table = tomllib.loads(render(config))["services"]["s"]
        self.assertEqual(list(table), ["exec", "listen", "enabled", "user", "deny"])


class CommandLineTests(SynchronousTestCase):
    def invoke(self, *argv: str) -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        status = main(list(argv), stdout, stderr)
        return status, stdout.getvalue(), stderr.getvalue()

    def test_convert(self) -> None:
        """The TOML goes to stdout, one note per line to stderr, exit status 0."""
        status, out, err = self.invoke(
            "inetd", str(DATA / "inetd.conf"), "--services", self.mktemp()
        )
        self.assertEqual(status, 0)
        self.assertIn("echo", tomllib.loads(out)["services"])
        self.assertEqual(
            len(err.splitlines()), len((DATA / "inetd.expected.notes").read_text().splitlines())
        )

    def test_output(self) -> None:
        """-o writes the file instead of stdout."""
        target = self.mktemp()
        status, out, _ = self.invoke("inetd", str(DATA / "inetd.conf"), "-o", target)
        self.assertEqual((status, out), (0, ""))
        self.assertIn("echo", tomllib.loads(Path(target).read_text())["services"])

    def test_failures(self) -> None:
        """An unreadable or garbled file is one line on stderr and exit status 1."""
        missing = self.mktemp()
        self.assertEqual(
            self.invoke("xinetd", missing),
            (1, "", f"netd import: {missing}: cannot read: No such file or directory\n"),
        )
        garbled = self.mktemp()
        Path(garbled).write_text("service echo\n{\n  type=INTERNAL\n}\n")
        status, out, err = self.invoke("xinetd", garbled)
        self.assertEqual((status, out, len(err.splitlines())), (1, "", 1))
        self.assertIn(f"{garbled}:3:", err)

    def test_usage(self) -> None:
        """An unknown format is a usage error: one line, exit status 2."""
        status, out, err = self.invoke("xinet", "f")
        self.assertEqual((status, out, len(err.splitlines())), (2, "", 1))
        self.assertIn("invalid choice: 'xinet'", err)

    def test_nothingEnabled(self) -> None:
        """A file whose services are all disabled says netd will refuse it until one is enabled."""
        path = self.mktemp()
        Path(path).write_text("#<off># echo stream tcp nowait root internal\n")
        status, _, err = self.invoke("inetd", path)
        self.assertEqual(status, 0)
        self.assertIn("no service is enabled", err)


class FuzzTests(SynchronousTestCase):
    """Whatever a file holds, an import ends in TOML that loads or in one ImportFailure line."""

    def check(self, importer: Any, text: str) -> None:
        if not hasattr(self, "path"):
            self.path = self.mktemp()
        path = self.path
        Path(path).write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            config = importer(path, PortTable(None))
        except ImportFailure as e:
            self.assertNotIn("\n", str(e))
            return
        tomllib.loads(render(config))
        for note in config.notes:
            self.assertNotIn("\n", str(note))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["service echo", "service x", "service time", "defaults"]),
                st.lists(XINETD_LINE | st.text(max_size=20), max_size=8),
            ).map(lambda e: "\n".join([e[0], "{", *e[1], *XINETD_BASE, "}"])),
            max_size=4,
        )
    )
    def test_xinetd(self, entries: list[str]) -> None:
        """Random xinetd-like files never raise anything but ImportFailure, and their TOML parses."""
        self.check(importXinetd, "\n".join(entries))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.lists(st.sampled_from(INETD_WORDS) | st.text(max_size=12), max_size=9)
                    .map(" ".join), max_size=12))  # fmt: skip
    def test_inetd(self, lines: list[str]) -> None:
        """Random inetd.conf-like files never raise anything but ImportFailure, and their TOML parses."""
        self.check(importInetd, "\n".join(lines))

    def test_everyAttributeWithEveryOddValue(self) -> None:
        """Each xinetd attribute with each odd value (and each operator, in a service or defaults) imports or fails in one line."""
        base = "\n".join(XINETD_BASE)
        combinations = [
            *((a, "=", v, "service x") for a in XINETD_ATTRIBUTES for v in XINETD_VALUES),
            *((a, op, v, "service x") for a in XINETD_ATTRIBUTES for op in ("+=", "-=")
              for v in ("x", "²", "10.0.0.0 ::1", "A=b")),
            *((a, "=", v, "defaults") for a in XINETD_ATTRIBUTES for v in XINETD_VALUES[:8]),
        ]  # fmt: skip
        for attribute, op, value, header in combinations:
            text = f"{header}\n{{\n    {attribute} {op} {value}\n}}\n"
            self.check(importXinetd, text + f"service y\n{{\n{base}\n}}\n")

    def test_everyFieldWithEveryOddWord(self) -> None:
        """Each inetd.conf field replaced by each odd word imports or fails in one line."""
        fields = "echo stream tcp nowait root /usr/sbin/tcpd in.echo -x".split()
        for position in range(len(fields)):
            for word in [*INETD_WORDS, *XINETD_VALUES]:
                line = [*fields[:position], word, *fields[position + 1 :]]
                self.check(importInetd, " ".join(line) + "\n")
