"""
C{netd import xinetd}: xinetd's syntax, its inheritance rules, and every attribute's
conversion, on small files written by each test and on a realistic /etc/xinetd.d set.
"""

from __future__ import annotations

import os
import textwrap
import tomllib
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from netd.config.file import parseConfig
from netd.importers.model import ImportedConfig, ImportFailure
from netd.importers.ports import PortTable
from netd.importers.writer import render
from netd.importers.xinetd import importXinetd
from netd.importers.xinetdconf import parseXinetd
from tests.support import builtins

DATA = Path(__file__).resolve().parent / "importdata"


def fixtureConf(test: SynchronousTestCase) -> str:
    """The realistic xinetd.conf, pointing at the fixture directory (its includedir)."""
    path = test.mktemp()
    Path(path).write_text((DATA / "xinetd.conf").read_text().replace("@DIR@", str(DATA)))
    return path


def normalise(text: str, conf: str) -> str:
    """Output with the machine-dependent paths replaced by the fixtures' placeholders."""
    return text.replace(conf, "@CONF@").replace(str(DATA), "@DIR@")


class XinetdCase(SynchronousTestCase):
    def write(self, text: str, path: str | None = None) -> str:
        path = path or self.mktemp()
        Path(path).write_text(textwrap.dedent(text))
        return path

    def convert(self, text: str) -> ImportedConfig:
        return importXinetd(self.write(text), PortTable(None))

    def service(self, body: str, defaults: str = "", name: str = "svc") -> dict[str, Any]:
        """The keys of the one service C{body} describes (after an optional defaults block)."""
        block = f"defaults\n{{\n{defaults}\n}}\n" if defaults else ""
        config = self.convert(f"{block}service {name}\n{{\n{body}\n}}\n")
        self.assertEqual(len(config.services), 1, config.notes)
        return config.services[0].keys

    def notes(self, config: ImportedConfig) -> list[str]:
        return [f"{n.attribute}: {n.message}" for n in config.notes]

    def assertFails(self, text: str, *fragments: str) -> None:
        with self.assertRaises(ImportFailure) as caught:
            self.convert(text)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)


PROGRAM = """\
    socket_type = stream
    wait = no
    user = nobody
    server = /usr/bin/prog
    port = 4000
    type = UNLISTED
"""


class SyntaxTests(XinetdCase):
    def test_commentsOnlyAtLineStart(self) -> None:
        """A '#' line is a comment, but a '#' inside a value is kept, as xinetd keeps it."""
        keys = self.service(PROGRAM + "  # a comment\n    server_args = -x #not-a-comment")
        self.assertEqual(keys["exec"], ["/usr/bin/prog", "-x", "#not-a-comment"])

    def test_missingOpeningBrace(self) -> None:
        """An entry without its '{' line is one error naming the file and line."""
        path = self.write("service echo\n    type = INTERNAL\n}\n")
        with self.assertRaises(ImportFailure) as caught:
            importXinetd(path)
        self.assertEqual(
            str(caught.exception),
            f"{path}:2: service echo: expected a line with only '{{'",
        )

    def test_missingClosingBrace(self) -> None:
        """An entry the file ends inside is an error naming where it starts."""
        self.assertFails("service echo\n{\n    type = INTERNAL\n", ":1:", "no closing '}'")

    def test_operatorNeedsABlank(self) -> None:
        """'name=value' is refused, as xinetd refuses it."""
        self.assertFails("service echo\n{\n    type=INTERNAL\n}\n", ":3:", "type=INTERNAL")

    def test_unknownTopLevelWord(self) -> None:
        """A line outside any entry that is not a keyword is an error."""
        self.assertFails("servce echo\n{\n}\n", ":1:", "'servce'")

    def test_unreadableFile(self) -> None:
        """A file that cannot be read is one line saying so."""
        missing = self.mktemp()
        with self.assertRaises(ImportFailure) as caught:
            importXinetd(missing)
        self.assertEqual(
            str(caught.exception), f"{missing}: cannot read: No such file or directory"
        )

    def test_includeAndIncludedir(self) -> None:
        """include reads a file; includedir reads a directory in C order, skipping names with '.' or '~' and non-files."""
        directory = self.mktemp()
        os.makedirs(os.path.join(directory, "subdir"))
        for name in ("b", "a", "c.rpmsave", "d~", "a.dpkg-old"):
            self.write(f"service {name}\n{{\n{PROGRAM}\n}}\n", os.path.join(directory, name))
        extra = self.write(f"service extra\n{{\n{PROGRAM}  port = 4001\n}}\n")
        top = self.write(f"include {extra}\nincludedir {directory}\n")
        entries, notes, files = parseXinetd(top)
        self.assertEqual(
            files, [top, extra, os.path.join(directory, "a"), os.path.join(directory, "b")]
        )
        self.assertEqual([e.name for e in entries], ["extra", "a", "b"])
        self.assertEqual(len(notes), 1)
        self.assertIn("subdir is not a regular file", str(notes[0]))

    def test_missingIncludedir(self) -> None:
        """A missing includedir is a note (xinetd logs it and goes on), not a failure."""
        config = self.convert(f"includedir {self.mktemp()}\nservice s\n{{\n{PROGRAM}\n}}\n")
        self.assertEqual(len(config.services), 1)
        self.assertIn("includedir: cannot read", str(config.notes[0]))

    def test_includeLoop(self) -> None:
        """A file including itself is an error, not a hang."""
        path = self.mktemp()
        self.write(f"include {path}\n", path)
        with self.assertRaises(ImportFailure) as caught:
            importXinetd(path)
        self.assertIn("a loop?", str(caught.exception))


class InheritanceTests(XinetdCase):
    def test_plusEqualsExtendsDefaults(self) -> None:
        """only_from += adds to the defaults' list; = replaces it."""
        defaults = "    only_from = 192.0.2.1\n    only_from = 192.0.2.2"
        added = self.service(PROGRAM + "    only_from += 198.51.100.0/24", defaults)
        self.assertEqual(added["allow"], ["192.0.2.1/32", "192.0.2.2/32", "198.51.100.0/24"])
        replaced = self.service(PROGRAM + "    only_from = 198.51.100.0/24", defaults)
        self.assertEqual(replaced["allow"], ["198.51.100.0/24"])

    def test_minusEqualsRemovesByNetwork(self) -> None:
        """only_from -= removes the network however it is written (10.0.0.0 is 10.0.0.0/8)."""
        keys = self.service(
            PROGRAM + "    only_from -= 10.0.0.0/8", "    only_from = 10.0.0.0 192.0.2.1"
        )
        self.assertEqual(keys["allow"], ["192.0.2.1/32"])

    def test_fixedAttributeKeepsFirstValue(self) -> None:
        """A fixed attribute set twice keeps its first value, with a note naming the first line."""
        config = self.convert(f"service s\n{{\n{PROGRAM}    user = other\n}}\n")
        self.assertEqual(config.services[0].keys["user"], "nobody")
        self.assertIn("user: already set at line 5", self.notes(config)[0])

    def test_operatorOnFixedAttribute(self) -> None:
        """+= on an attribute that takes one value is ignored with a note, as in xinetd."""
        config = self.convert(f"service s\n{{\n{PROGRAM}    nice += 5\n}}\n")
        self.assertNotIn("nice", config.services[0].keys)
        self.assertIn("nice: '+=' is not allowed here", self.notes(config)[0])

    def test_unknownAndMisplacedAttributes(self) -> None:
        """An unknown attribute, or a service attribute in defaults, is one note each."""
        config = self.convert(
            f"defaults\n{{\n    server = /bin/x\n}}\nservice s\n{{\n{PROGRAM}    colour = blue\n}}\n"
        )
        self.assertEqual(
            self.notes(config),
            [
                "server: not allowed in defaults: xinetd ignores it, so does this import",
                "colour: unknown attribute: xinetd ignores it, so does this import",
            ],
        )

    def test_defaultsReadLaterApplyOnlyInPart(self) -> None:
        """A defaults block after a service gives it instances but not only_from, as xinetd's parser does."""
        config = self.convert(
            f"service s\n{{\n{PROGRAM}\n}}\n"
            "defaults\n{\n    instances = 7\n    only_from = 192.0.2.1\n}\n"
        )
        keys = config.services[0].keys
        self.assertEqual(keys["max-connections"], 7)
        self.assertNotIn("allow", keys)

    def test_enabledAndDisabledLists(self) -> None:
        """defaults' enabled runs exactly the ids listed (even one with disable = yes); disabled stops those."""
        config = self.convert(
            "defaults\n{\n    enabled = a b\n    disabled = b\n}\n"
            + "".join(
                f"service {n}\n{{\n{PROGRAM}    port = {p}\n    disable = yes\n}}\n"
                for n, p in (("a", 1), ("b", 2), ("c", 3))
            )
        )
        self.assertEqual([s.enabled for s in config.services], [True, False, False])

    def test_secondDefaultsBlock(self) -> None:
        """A second defaults block is ignored with a note, as xinetd ignores it."""
        config = self.convert(
            "defaults\n{\n    instances = 1\n}\ndefaults\n{\n    instances = 2\n}\n"
            f"service s\n{{\n{PROGRAM}\n}}\n"
        )
        self.assertEqual(config.services[0].keys["max-connections"], 1)
        self.assertIn("a second defaults block", self.notes(config)[0])

    def test_defaultsNoteOnce(self) -> None:
        """An unconvertible defaults line is one note, however many services inherit it."""
        config = self.convert(
            "defaults\n{\n    log_on_success = PID\n}\n"
            + "".join(
                f"service s{p}\n{{\n{PROGRAM.replace('4000', str(p))}\n}}\n" for p in (1, 2, 3)
            )
        )
        self.assertEqual([str(n).split(": ", 1)[1] for n in config.notes], [
            "defaults: log_on_success: no equivalent: netd logs every connection (peer, "
            "duration; pid and exit status for programs); log-connections = false switches that off"
        ])  # fmt: skip


class InternalTests(XinetdCase):
    def test_builtinsByNameAndSocketType(self) -> None:
        """type = INTERNAL serves netd's built-in of the service's name; stream is TCP, dgram UDP, ports from the name."""
        config = self.convert(
            "service echo\n{\n    type = INTERNAL\n    id = echo-stream\n    socket_type = stream\n"
            "    user = root\n    wait = no\n}\n"
            "service time\n{\n    type = INTERNAL\n    id = time-dgram\n    socket_type = dgram\n"
            "    protocol = udp\n    wait = yes\n}\n"
        )
        self.assertEqual(
            [(s.name, s.keys) for s in config.services],
            [
                ("echo-stream", {"protocol": "echo", "listen": ["tcp:7"]}),
                ("time-dgram", {"protocol": "time", "listen": ["udp:37"]}),
            ],
        )
        self.assertEqual(config.notes, [])

    def test_unknownInternal(self) -> None:
        """An INTERNAL service netd lacks (servers, services, tcpmux) is a note and no table."""
        config = self.convert(
            "service servers\n{\n    type = INTERNAL UNLISTED\n    port = 9099\n    socket_type = stream\n}\n"
        )
        self.assertEqual(config.services, [])
        self.assertIn("INTERNAL service 'servers' has no netd equivalent", self.notes(config)[0])

    def test_udpChargenIsCommentedOut(self) -> None:
        """UDP chargen is written only as a comment: the file still loads, and serves no amplifier."""
        config = self.convert(
            "service chargen\n{\n    type = INTERNAL\n    socket_type = dgram\n}\n"
            "service echo\n{\n    type = INTERNAL\n    socket_type = stream\n}\n"
        )
        text = render(config)
        self.assertIn("# [services.chargen]", text)
        self.assertEqual(list(tomllib.loads(text)["services"]), ["echo"])

    def test_programAttributesOnInternal(self) -> None:
        """A program's attribute on a built-in (server_args, env) is a note: the built-in runs inside netd."""
        config = self.convert(
            "service echo\n{\n    type = INTERNAL\n    socket_type = stream\n    env = A=1\n}\n"
        )
        self.assertIn("env: a built-in runs inside netd", self.notes(config)[0])


class ProgramTests(XinetdCase):
    def test_serverAndArguments(self) -> None:
        """server and server_args are the exec argv; wait = yes is wait = true; user and group are kept, numbers as numbers."""
        keys = self.service(
            PROGRAM.replace("wait = no", "wait = yes") + "    server_args = -a b\n    group = 65534"
        )
        self.assertEqual(keys["exec"], ["/usr/bin/prog", "-a", "b"])
        self.assertEqual((keys["wait"], keys["user"], keys["group"]), (True, "nobody", 65534))

    def test_tcpdUnwrapped(self) -> None:
        """NAMEINARGS with tcpd runs the wrapped program itself, with a note about hosts.allow."""
        config = self.convert(
            "service finger\n{\n    flags = NAMEINARGS\n    socket_type = stream\n    wait = no\n"
            "    user = nobody\n    server = /usr/sbin/tcpd\n    server_args = in.fingerd -w\n}\n"
        )
        self.assertEqual(config.services[0].keys["exec"], ["/usr/sbin/in.fingerd", "-w"])
        self.assertIn("tcpd unwrapped", self.notes(config)[0])

    def test_nameInArgsOtherArgv0(self) -> None:
        """NAMEINARGS with another argv[0] keeps the program and notes the lost name."""
        keys = self.service(
            PROGRAM.replace("wait = no", "wait = no\n    flags = NAMEINARGS")
            + "    server_args = other -v"
        )
        self.assertEqual(keys["exec"], ["/usr/bin/prog", "-v"])

    def test_badWait(self) -> None:
        """wait must be yes or no: anything else is one error naming the service and attribute."""
        self.assertFails(
            f"service s\n{{\n{PROGRAM.replace('wait = no', 'wait = maybe')}\n}}\n",
            ":4:", "service 's': wait: expected yes or no, got 'maybe'",
        )  # fmt: skip

    def test_datagramNowait(self) -> None:
        """A datagram program with wait = no is written in wait mode and disabled, with a note."""
        config = self.convert(f"service s\n{{\n{PROGRAM.replace('stream', 'dgram')}\n}}\n")
        keys = config.services[0].keys
        self.assertEqual((keys["wait"], keys["enabled"]), (True, False))
        self.assertIn("wait: a datagram program without wait", self.notes(config)[0])

    def test_missingWait(self) -> None:
        """A program without wait is an error, as xinetd requires it."""
        self.assertFails(
            f"service s\n{{\n{PROGRAM.replace('wait = no', '')}\n}}\n", "wait: missing"
        )

    def test_missingUser(self) -> None:
        """A program without user is converted with a note (netd would run it as itself)."""
        config = self.convert(f"service s\n{{\n{PROGRAM.replace('user = nobody', '')}\n}}\n")
        self.assertNotIn("user", config.services[0].keys)
        self.assertIn("user: missing", self.notes(config)[0])

    def test_environment(self) -> None:
        """env becomes a table (values may be empty), passenv the pass-env list."""
        keys = self.service(
            PROGRAM + "    env = LANG=C.UTF-8 EMPTY=\n    env += X=a=b\n    passenv = TZ HOME"
        )
        self.assertEqual(keys["env"], {"LANG": "C.UTF-8", "EMPTY": "", "X": "a=b"})
        self.assertEqual(keys["pass-env"], ["TZ", "HOME"])

    def test_badEnvironment(self) -> None:
        """env -= and a variable without '=' are errors, as in xinetd."""
        self.assertFails(
            f"service s\n{{\n{PROGRAM}    env -= A\n}}\n", "env: xinetd does not allow '-='"
        )
        self.assertFails(f"service s\n{{\n{PROGRAM}    env = A\n}}\n", "env: 'A' is not NAME=VALUE")

    def test_limits(self) -> None:
        """rlimit_* become rlimits (K/M kept, UNLIMITED as "unlimited"), nice a number, umask three octal digits."""
        keys = self.service(
            PROGRAM + "    rlimit_as = 512M\n    rlimit_data = 64k\n    rlimit_cpu = 60\n"
            "    rlimit_files = 1024\n    rlimit_rss = UNLIMITED\n    rlimit_stack = 8388608\n"
            "    nice = -5\n    umask = 22"
        )
        self.assertEqual(
            keys["rlimits"],
            {"as": "512M", "data": "64K", "cpu": 60, "nofile": 1024, "rss": "unlimited",
             "stack": 8388608},
        )  # fmt: skip
        self.assertEqual((keys["nice"], keys["umask"]), (-5, "022"))

    def test_badLimits(self) -> None:
        """A size with another suffix, a CPU time with a suffix, or umask 888 is an error naming the attribute."""
        for line, fragment in [
            ("rlimit_as = 5G", "rlimit_as: expected a number"),
            ("rlimit_cpu = 5M", "rlimit_cpu: expected a number"),
            ("umask = 888", "umask: expected an octal number"),
            ("nice = high", "nice: expected a whole number"),
        ]:
            self.assertFails(f"service s\n{{\n{PROGRAM}    {line}\n}}\n", fragment)

    def test_groupsNo(self) -> None:
        """groups = no is a note: netd always sets the supplementary groups."""
        config = self.convert(f"service s\n{{\n{PROGRAM}    groups = no\n}}\n")
        self.assertIn("groups: netd always sets", self.notes(config)[0])


class ListenTests(XinetdCase):
    def test_portAndBind(self) -> None:
        """port and bind make the listen string; an IPv6 bind uses tcp6 with escaped colons."""
        self.assertEqual(
            self.service(PROGRAM + "    bind = 192.0.2.1")["listen"],
            ["tcp:4000:interface=192.0.2.1"],
        )
        self.assertEqual(
            self.service(PROGRAM + "    interface = ::1")["listen"], ["tcp6:4000:interface=\\:\\:1"]
        )

    def test_bindHostName(self) -> None:
        """A host name in bind is never resolved: loopback instead, and a note."""
        config = self.convert(f"service s\n{{\n{PROGRAM}    bind = myhost\n}}\n")
        self.assertEqual(config.services[0].keys["listen"], ["tcp:4000:interface=127.0.0.1"])
        self.assertIn("bind: 'myhost' is a host name", self.notes(config)[0])

    def test_ipv6Flags(self) -> None:
        """flags = IPv6 listens dual-stack; with v6only = yes IPv4 clients are denied, as on xinetd's v6-only socket."""
        self.assertEqual(self.service(PROGRAM + "    flags = IPv6")["listen"], ["tcp6:4000"])
        keys = self.service(PROGRAM + "    flags = IPv6\n    v6only = yes")
        self.assertEqual(keys["deny"], ["0.0.0.0/0"])

    def test_udp(self) -> None:
        """dgram services listen on udp:PORT."""
        keys = self.service(PROGRAM.replace("stream", "dgram").replace("wait = no", "wait = yes"))
        self.assertEqual(keys["listen"], ["udp:4000"])

    def test_portFromName(self) -> None:
        """Without port, the service name gives it (netd's table, then the services file)."""
        services = self.write("myproto 4444/tcp\n")
        path = self.write(
            "service myproto\n{\n    socket_type = stream\n    wait = no\n    user = u\n    server = /bin/p\n}\n"
        )
        config = importXinetd(path, PortTable(services))
        self.assertEqual(config.services[0].keys["listen"], ["tcp:4444"])

    def test_unknownName(self) -> None:
        """A name with no known port is a note and no table; so is UNLISTED without a port."""
        config = self.convert(
            "service nosuch\n{\n    socket_type = stream\n    server = /bin/p\n    wait = no\n}\n"
        )
        self.assertEqual(config.services, [])
        self.assertIn(
            "port: none given and service 'nosuch' (tcp) is in neither", self.notes(config)[0]
        )
        config = self.convert(f"service s\n{{\n{PROGRAM.replace('port = 4000', '')}\n}}\n")
        self.assertIn("UNLISTED without a port", self.notes(config)[0])

    def test_unsupportedKinds(self) -> None:
        """RPC services and raw sockets are notes, not tables."""
        config = self.convert(
            f"service a\n{{\n{PROGRAM.replace('UNLISTED', 'RPC UNLISTED')}\n}}\n"
            f"service b\n{{\n{PROGRAM.replace('stream', 'raw')}\n}}\n"
        )
        self.assertEqual(config.services, [])
        self.assertEqual(len(config.notes), 2)

    def test_badPort(self) -> None:
        """A port that is not a number from 0 to 65535 is an error."""
        self.assertFails(
            f"service s\n{{\n{PROGRAM.replace('4000', '70000')}\n}}\n", "port: expected a number"
        )


class AccessTests(XinetdCase):
    def allow(self, onlyFrom: str, noAccess: str = "") -> dict[str, Any]:
        body = PROGRAM + f"    only_from = {onlyFrom}\n"
        if noAccess:
            body += f"    no_access = {noAccess}\n"
        keys = self.service(body)
        return {key: keys[key] for key in ("allow", "deny") if key in keys}

    def test_addressForms(self) -> None:
        """Every numeric form xinetd takes becomes a CIDR: trailing zeros, 0.0.0.0, factorized, masks with host bits, IPv6."""
        self.assertEqual(
            self.allow("10.0.0.0 128.138.12.0 192.0.2.7 128.138.{193,194} 10.1.2.3/8 2001:db8::1 2001:db8::/32"),
            {"allow": ["10.0.0.0/8", "128.138.12.0/24", "192.0.2.7/32", "128.138.193.0/24",
                       "128.138.194.0/24", "2001:db8::1/128", "2001:db8::/32"]},
        )  # fmt: skip
        self.assertEqual(self.allow("0.0.0.0"), {"allow": ["0.0.0.0/0"]})

    def test_hostNamesLeftOut(self) -> None:
        """Names are left out with a note; an only_from of names only refuses everyone, as it would match no address."""
        self.assertEqual(
            self.allow("192.0.2.7 trusted.example .example.org"), {"allow": ["192.0.2.7/32"]}
        )
        self.assertEqual(self.allow("trusted.example"), {"deny": ["0.0.0.0/0", "::/0"]})

    def test_emptyOnlyFromRefusesEveryone(self) -> None:
        """only_from with no value makes the service available to nobody, as xinetd documents."""
        self.assertEqual(self.allow(""), {"deny": ["0.0.0.0/0", "::/0"]})

    def test_noAccessAlwaysWins(self) -> None:
        """An allowed network inside a denied one is dropped: in xinetd no_access always wins, in netd the most specific rule would."""
        self.assertEqual(
            self.allow("10.0.0.5 192.0.2.0/24", "10.0.0.0/8"),
            {"allow": ["192.0.2.0/24"], "deny": ["10.0.0.0/8"]},
        )
        self.assertEqual(
            self.allow("10.0.0.5", "10.0.0.0/8"), {"deny": ["10.0.0.0/8", "0.0.0.0/0", "::/0"]}
        )

    def test_noAccessNameNotRefused(self) -> None:
        """A name in no_access cannot be refused by netd: the note says its clients are NOT refused."""
        config = self.convert(f"service s\n{{\n{PROGRAM}    no_access = evil.example\n}}\n")
        self.assertNotIn("deny", config.services[0].keys)
        self.assertIn("NOT refused by netd", self.notes(config)[0])

    def test_badAddress(self) -> None:
        """A value that is neither an address nor a name (300.1.2.3) is an error."""
        self.assertFails(f"service s\n{{\n{PROGRAM}    only_from = 300.1.2.3\n}}\n", "only_from")


class LimitTests(XinetdCase):
    def test_instancesAndPerSource(self) -> None:
        """instances is max-connections, per_source max-per-source; UNLIMITED is 0."""
        keys = self.service(PROGRAM + "    instances = 30\n    per_source = UNLIMITED")
        self.assertEqual((keys["max-connections"], keys["max-per-source"]), (30, 0))

    def test_cps(self) -> None:
        """cps N WAIT is rate = burst = N (udp-rate for datagrams), with a note that netd's recovers by itself."""
        config = self.convert(f"service s\n{{\n{PROGRAM}    cps = 20 15\n}}\n")
        self.assertEqual(
            (config.services[0].keys["rate"], config.services[0].keys["burst"]), (20, 20)
        )
        self.assertIn("xinetd stops the whole service for 15 s", self.notes(config)[0])
        keys = self.service(
            PROGRAM.replace("stream", "dgram").replace("wait = no", "wait = yes")
            + "    cps = 20 15"
        )
        self.assertEqual((keys["udp-rate"], keys["udp-burst"]), (20, 20))

    def test_banners(self) -> None:
        """banner_fail's file is the refused-banner, CRLF kept; banner and banner_success are notes."""
        banner = self.mktemp()
        Path(banner).write_bytes(b"go away\r\n")
        config = self.convert(
            f"service s\n{{\n{PROGRAM}    banner_fail = {banner}\n    banner = {banner}\n}}\n"
        )
        self.assertEqual(config.services[0].keys["refused-banner"], "go away\r\n")
        self.assertIn("banner: no equivalent", self.notes(config)[0])

    def test_noEquivalentNotes(self) -> None:
        """Each attribute netd has no key for is exactly one note naming file:line, service and attribute."""
        path = self.write(
            f"service s\n{{\n{PROGRAM}    log_type = SYSLOG daemon\n    access_times = 2:00-8:59\n"
            "    flags = KEEPALIVE NODELAY REUSE\n    max_load = 2\n    deny_time = 60\n}\n"
        )
        config = importXinetd(path, PortTable(None))
        self.assertEqual(
            [str(n).split(": ", 2)[1:] for n in config.notes],
            [
                ["service 's'", "log_type: no equivalent: netd logs through twistd (--logfile, --syslog) or the journal"],
                ["service 's'", "access_times: no equivalent: netd has no time-of-day access rules"],
                ["service 's'", "max_load: no equivalent: netd does not refuse by load average"],
                ["service 's'", "deny_time: no equivalent: netd has no timed ban; rate limits recover by themselves"],
                ["service 's'", "flags: no equivalent for KEEPALIVE, NODELAY"],
            ],
        )  # fmt: skip
        self.assertEqual(str(config.notes[0]).split(": ")[0], f"{path}:9")

    def test_everyAttributeWithoutEquivalent(self) -> None:
        """Each of the remaining attributes without a netd key is exactly one note saying so."""
        for line in ("banner_success = /etc/issue", "mdns = yes", "libwrap = svc",
                     "rpc_number = 100001", "rpc_version = 1-3", "log_on_failure = HOST"):  # fmt: skip
            config = self.convert(f"service s\n{{\n{PROGRAM}    {line}\n}}\n")
            attribute = line.split()[0]
            self.assertEqual([n.attribute for n in config.notes], [attribute])
            self.assertIn("no equivalent", config.notes[0].message)


class ForwardTests(XinetdCase):
    def test_redirect(self) -> None:
        """redirect = ADDR PORT is forward; an IPv6 target is escaped; server is ignored with a note."""
        keys = self.service(PROGRAM + "    redirect = 192.0.2.10 443")
        self.assertEqual(keys["forward"], "tcp:192.0.2.10:443")
        self.assertNotIn("exec", keys)
        keys = self.service(
            PROGRAM.replace("    server = /usr/bin/prog\n", "") + "    redirect = 2001:db8::1 443"
        )
        self.assertEqual(keys["forward"], "tcp:host=2001\\:db8\\:\\:1:port=443")

    def test_redirectToName(self) -> None:
        """A redirect to a host name is written disabled with a placeholder address and a note."""
        config = self.convert(f"service s\n{{\n{PROGRAM}    redirect = backend.example 443\n}}\n")
        self.assertEqual(config.services[0].keys["enabled"], False)
        self.assertTrue(any("'backend.example' is a host name" in n for n in self.notes(config)))

    def test_redirectWait(self) -> None:
        """A redirected service that waits is an error, as in xinetd."""
        self.assertFails(
            f"service s\n{{\n{PROGRAM.replace('wait = no', 'wait = yes')}    redirect = 192.0.2.1 80\n}}\n",
            "nowait services only",
        )


class DuplicateTests(XinetdCase):
    def test_sameIdTwice(self) -> None:
        """A second identical entry (Debian's echo and echo-udp files) is left out; a different one is renamed."""
        entry = "service echo\n{\n    type = INTERNAL\n    id = echo-dgram\n    socket_type = dgram\n    port = %d\n}\n"
        config = self.convert(entry % 7 + entry % 7 + entry % 8)
        self.assertEqual([s.name for s in config.services], ["echo-dgram", "echo-dgram-2"])

    def test_sameAddressTwice(self) -> None:
        """A second enabled service on a served address is written disabled: netd refuses two owners."""
        config = self.convert(f"service a\n{{\n{PROGRAM}\n}}\nservice b\n{{\n{PROGRAM}\n}}\n")
        self.assertEqual([s.enabled for s in config.services], [True, False])


class FixtureTests(SynchronousTestCase):
    def test_realisticSet(self) -> None:
        """Debian's /etc/xinetd.d files plus rsync, tftp, a redirect and a tcpd service convert to the reviewed TOML and notes."""
        conf = fixtureConf(self)
        config = importXinetd(conf, PortTable(None))
        self.assertEqual(
            normalise(render(config), conf), (DATA / "xinetd.expected.toml").read_text()
        )
        notes = "".join(f"{n}\n" for n in config.sortedNotes())
        self.assertEqual(normalise(notes, conf), (DATA / "xinetd.expected.notes").read_text())

    def test_forwardLoads(self) -> None:
        """The redirect of the set becomes a forward service netd's config parser accepts, with the defaults' access rules."""
        config = importXinetd(fixtureConf(self), PortTable(None))
        config.services = [s for s in config.services if "forward" in s.keys]
        loaded = parseConfig(render(config), "imported.toml", builtins())
        [api] = loaded.services
        self.assertEqual((api.name, [spec.description for spec in api.listen]),
                         ("api", ["tcp:6443:interface=127.0.0.1"]))  # fmt: skip
        self.assertEqual(api.policy.maxConnections, 0)

    def test_internalServicesLoad(self) -> None:
        """The built-in services of the set load with netd's own config parser (enabled, UDP chargen aside)."""
        config = importXinetd(fixtureConf(self), PortTable(None))
        config.services = [s for s in config.services if s.internal]
        for service in config.services:
            service.keys.pop("enabled", None)
        loaded = parseConfig(render(config), "imported.toml", builtins())
        self.assertEqual(
            [s.name for s in loaded.services],
            ["chargen-stream", "daytime-stream", "daytime-dgram", "discard-stream",
             "discard-dgram", "echo-stream", "echo-dgram", "time-stream", "time-dgram"],
        )  # fmt: skip
        echo = next(s for s in loaded.services if s.name == "echo-stream")
        self.assertEqual((echo.policy.maxConnections, echo.policy.maxPerSource), (60, 10))
