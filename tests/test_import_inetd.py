"""
C{netd import inetd}: the classic inetd.conf fields, Debian's conventions, and a
realistic Debian /etc/inetd.conf.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from netd.config.file import parseConfig
from netd.importers.inetd import importInetd
from netd.importers.model import ImportedConfig, ImportFailure
from netd.importers.ports import PortTable
from netd.importers.writer import render
from tests.support import builtins

DATA = Path(__file__).resolve().parent / "importdata"


class InetdCase(SynchronousTestCase):
    def convert(self, text: str, services: str | None = None) -> ImportedConfig:
        path = self.mktemp()
        Path(path).write_text(text)
        return importInetd(path, PortTable(services))

    def keys(self, line: str) -> dict[str, Any]:
        config = self.convert(line + "\n")
        self.assertEqual(len(config.services), 1, config.notes)
        return config.services[0].keys

    def notes(self, config: ImportedConfig) -> list[str]:
        return [f"{n.attribute}: {n.message}" for n in config.notes]

    def assertFails(self, text: str, *fragments: str) -> None:
        with self.assertRaises(ImportFailure) as caught:
            self.convert(text)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))


class FieldTests(InetdCase):
    def test_internal(self) -> None:
        """internal serves netd's built-in of the service's name; a datagram twin is named NAME-udp."""
        config = self.convert(
            "echo stream tcp4 nowait root internal\necho dgram udp4 wait root internal\n"
            "time dgram udp4 wait root internal\n"
        )
        self.assertEqual(
            [(s.name, s.keys) for s in config.services],
            [
                ("echo", {"protocol": "echo", "listen": ["tcp:7"]}),
                ("echo-udp", {"protocol": "echo", "listen": ["udp:7"]}),
                ("time", {"protocol": "time", "listen": ["udp:37"]}),
            ],
        )

    def test_unknownInternal(self) -> None:
        """An internal service netd lacks is a note and no table."""
        config = self.convert("tcpmux stream tcp nowait root internal\n")
        self.assertEqual(config.services, [])
        self.assertIn("internal service 'tcpmux' has no netd equivalent", self.notes(config)[0])

    def test_program(self) -> None:
        """The program with its arguments after argv[0] is exec; wait is wait = true."""
        keys = self.keys("tftp dgram udp4 wait nobody /usr/sbin/in.tftpd in.tftpd -s /srv")
        self.assertEqual(keys["exec"], ["/usr/sbin/in.tftpd", "-s", "/srv"])
        self.assertEqual((keys["wait"], keys["user"]), (True, "nobody"))

    def test_programWithoutArguments(self) -> None:
        """A program line with no argv[0] runs the program alone."""
        self.assertEqual(
            self.keys("finger stream tcp4 nowait nobody /usr/sbin/in.fingerd")["exec"],
            ["/usr/sbin/in.fingerd"],
        )

    def test_datagramNowait(self) -> None:
        """A datagram program in nowait mode is written in wait mode and disabled, with a note: netd hands datagram sockets over only so."""
        config = self.convert("biff dgram udp4 nowait root /usr/sbin/in.comsat in.comsat\n")
        keys = config.services[0].keys
        self.assertEqual((keys["wait"], keys["enabled"]), (True, False))
        self.assertIn("without wait", self.notes(config)[0])

    def test_userAndGroup(self) -> None:
        """user.group and user:group both give user and group; numbers stay numbers."""
        for field in ("nobody.nogroup", "nobody:nogroup"):
            keys = self.keys(f"git stream tcp4 nowait {field} /usr/bin/git git daemon --inetd")
            self.assertEqual((keys["user"], keys["group"]), ("nobody", "nogroup"))
        keys = self.keys("git stream tcp4 nowait 65534.65534 /usr/bin/git git daemon --inetd")
        self.assertEqual((keys["user"], keys["group"]), (65534, 65534))

    def test_tcpdUnwrapped(self) -> None:
        """tcpd's argument is the real program, in /usr/sbin unless absolute; a note says hosts.allow is not read."""
        config = self.convert("ident stream tcp4 nowait identd /usr/sbin/tcpd in.identd -l\n")
        self.assertEqual(config.services[0].keys["exec"], ["/usr/sbin/in.identd", "-l"])
        self.assertIn("tcpd unwrapped: netd runs /usr/sbin/in.identd itself", self.notes(config)[0])

    def test_busyboxApplet(self) -> None:
        """busybox keeps its applet name as its first argument (its argv[0] would be lost)."""
        keys = self.keys("www stream tcp4 nowait www-data /bin/busybox httpd -i -h /var/www")
        self.assertEqual(keys["exec"], ["/bin/busybox", "httpd", "-i", "-h", "/var/www"])

    def test_otherArgv0(self) -> None:
        """An argv[0] other than the program's name is lost, with a note."""
        config = self.convert("rsync stream tcp4 nowait root /usr/bin/rsync rsyncd --daemon\n")
        self.assertEqual(config.services[0].keys["exec"], ["/usr/bin/rsync", "--daemon"])
        self.assertIn("argv[0] 'rsyncd' differs", self.notes(config)[0])

    def test_maximum(self) -> None:
        """nowait.MAX is a per-source rate of MAX a minute with a burst of MAX, and a note saying how it differs."""
        config = self.convert("ident stream tcp4 nowait.400 identd /usr/sbin/identd identd\n")
        keys = config.services[0].keys
        self.assertEqual((keys["rate"], keys["burst"]), (6.667, 400))
        self.assertIn("stops it 10 minutes", self.notes(config)[0])
        keys = self.keys("talk dgram udp4 wait.120 nobody /usr/sbin/in.talkd in.talkd")
        self.assertEqual((keys["udp-rate"], keys["udp-burst"]), (2, 120))

    def test_disabledByUpdateInetd(self) -> None:
        """A line Debian's update-inetd switched off (#<off>#) is converted disabled; other comments are skipped."""
        config = self.convert(
            "#<off># telnet stream tcp4 nowait telnetd /usr/sbin/in.telnetd in.telnetd\n"
            "#finger stream tcp4 nowait nobody /usr/sbin/in.fingerd in.fingerd\n"
        )
        self.assertEqual([(s.name, s.enabled) for s in config.services], [("telnet", False)])

    def test_garbledDisabledLineIsAComment(self) -> None:
        """A switched-off line too short to be a service is only a comment, as inetd reads it."""
        config = self.convert("#<off># telnet stream tcp\necho stream tcp4 nowait root internal\n")
        self.assertEqual([s.name for s in config.services], ["echo"])

    def test_socketOptions(self) -> None:
        """sndbuf/rcvbuf after the protocol are a note: netd leaves buffers to the kernel."""
        config = self.convert(
            "amanda stream tcp4,rcvbuf=64k nowait backup /usr/sbin/amandad amandad\n"
        )
        self.assertIn("no equivalent for rcvbuf=64k", self.notes(config)[0])

    def test_unsupported(self) -> None:
        """RPC and unix-socket services are notes, not tables."""
        config = self.convert(
            "rstatd/1-3 dgram rpc/udp wait root /usr/sbin/rpc.rstatd rpc.rstatd\n"
            "/run/x.sock stream unix nowait root /bin/cat cat\n"
        )
        self.assertEqual(config.services, [])
        self.assertEqual(len(config.notes), 2)


class PortTests(InetdCase):
    def test_numberTableAndServicesFile(self) -> None:
        """A number is its port, a classic name comes from netd's table, another from the services file."""
        services = self.mktemp()
        Path(services).write_text("# local\nmyproto\t4444/tcp\t\tmp  # comment\n")
        config = self.convert(
            "8080 stream tcp4 nowait u /bin/p p\nfinger stream tcp4 nowait u /bin/p p\n"
            "mp stream tcp4 nowait u /bin/p p\n",
            services,
        )
        self.assertEqual(
            [(s.name, s.keys["listen"]) for s in config.services],
            [("port-8080", ["tcp:8080"]), ("finger", ["tcp:79"]), ("mp", ["tcp:4444"])],
        )

    def test_unknownName(self) -> None:
        """A name found nowhere is a note and no table."""
        config = self.convert("nosuch stream tcp4 nowait u /bin/p p\n")
        self.assertEqual(config.services, [])
        self.assertIn("'nosuch' (tcp) is in neither", self.notes(config)[0])

    def test_garbledServicesFile(self) -> None:
        """A services file that is needed and garbled is one error naming it."""
        services = self.mktemp()
        Path(services).write_text("myproto notaport\n")
        with self.assertRaises(ImportFailure) as caught:
            self.convert("myproto stream tcp4 nowait u /bin/p p\n", services)
        self.assertIn("cannot look up service 'myproto'", str(caught.exception))


class FamilyTests(InetdCase):
    def test_families(self) -> None:
        """tcp4 is IPv4, tcp and tcp46 are one dual-stack tcp6 listener, tcp6 alone denies IPv4 clients."""
        self.assertEqual(self.keys("echo stream tcp4 nowait root internal")["listen"], ["tcp:7"])
        self.assertEqual(self.keys("echo stream tcp nowait root internal")["listen"], ["tcp6:7"])
        self.assertEqual(self.keys("echo stream tcp46 nowait root internal")["listen"], ["tcp6:7"])
        v6 = self.keys("echo stream tcp6 nowait root internal")
        self.assertEqual((v6["listen"], v6["deny"]), (["tcp6:7"], ["0.0.0.0/0"]))
        self.assertEqual(
            self.keys("echo dgram udp wait root internal")["listen"], ["udp:7:interface=\\:\\:"]
        )

    def test_tcp4AndTcp6Merge(self) -> None:
        """A tcp4 and a tcp6 line for the same program are one service on one dual-stack listener."""
        config = self.convert(
            "git stream tcp4 nowait nobody /usr/bin/git git daemon --inetd\n"
            "git stream tcp6 nowait nobody /usr/bin/git git daemon --inetd\n"
        )
        self.assertEqual(len(config.services), 1)
        self.assertEqual(config.services[0].keys["listen"], ["tcp6:9418"])
        self.assertNotIn("deny", config.services[0].keys)

    def test_addressPrefixes(self) -> None:
        """ADDR:service binds one address; a line 'ADDR:' sets it for the lines below until '*:'; a name becomes loopback with a note."""
        config = self.convert(
            "127.0.0.1,::1:echo stream tcp nowait root internal\n"
            "192.0.2.1:\ndaytime stream tcp nowait root internal\n*:\n"
            "time stream tcp4 nowait root internal\nmyhost:discard stream tcp nowait root internal\n"
        )
        self.assertEqual(
            [s.keys["listen"] for s in config.services],
            [
                ["tcp:7:interface=127.0.0.1", "tcp6:7:interface=\\:\\:1"],
                ["tcp:13:interface=192.0.2.1"],
                ["tcp:37"],
                ["tcp:9:interface=127.0.0.1"],
            ],
        )
        self.assertIn("'myhost' is a host name", self.notes(config)[0])


class BadInputTests(InetdCase):
    def test_tooFewFields(self) -> None:
        """A line with fewer than six fields is one error naming the file and line."""
        self.assertFails(
            "# comment\necho stream tcp nowait root\n", ":2:", "expected at least 6 fields"
        )

    def test_badWait(self) -> None:
        """A wait field that is neither wait nor nowait (or has a non-number after the dot) is an error."""
        self.assertFails("echo stream tcp sometimes root internal\n", "expected wait or nowait")
        self.assertFails("echo stream tcp nowait.lots root internal\n", "must be a number")

    def test_socketTypeAgainstProtocol(self) -> None:
        """A stream service over UDP is an error."""
        self.assertFails(
            "echo stream udp nowait root internal\n", "socket type stream with protocol udp"
        )

    def test_unreadable(self) -> None:
        """A file that cannot be read is one line saying so."""
        missing = self.mktemp()
        with self.assertRaises(ImportFailure) as caught:
            importInetd(missing)
        self.assertEqual(
            str(caught.exception), f"{missing}: cannot read: No such file or directory"
        )


class FixtureTests(SynchronousTestCase):
    def test_debianInetdConf(self) -> None:
        """A realistic Debian /etc/inetd.conf converts to the reviewed TOML and notes, and the TOML parses."""
        path = str(DATA / "inetd.conf")
        config = importInetd(path, PortTable(None))
        text = render(config).replace(str(DATA) + "/", "")
        self.assertEqual(text, (DATA / "inetd.expected.toml").read_text())
        notes = "".join(f"{n}\n" for n in config.sortedNotes()).replace(str(DATA) + "/", "")
        self.assertEqual(notes, (DATA / "inetd.expected.notes").read_text())
        self.assertIn("git", tomllib.loads(text)["services"])

    def test_internalServicesLoad(self) -> None:
        """The internal services of the file load with netd's own config parser."""
        config = importInetd(str(DATA / "inetd.conf"), PortTable(None))
        config.services = [s for s in config.services if s.internal and s.commentedOut is None]
        loaded = parseConfig(render(config), "imported.toml", builtins())
        self.assertEqual(
            [s.name for s in loaded.services],
            ["echo", "echo-udp", "discard", "discard-udp", "daytime", "daytime-udp", "time"],
        )
