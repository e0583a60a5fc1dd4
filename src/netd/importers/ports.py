"""
Service names to port numbers, without asking any resolver.

Both inetd.conf and xinetd name services as /etc/services does.  A built-in table covers
the services inetds actually run, so an import gives the same answer on every machine
(and in tests); a name it lacks is looked up in a services file, by default
C{/etc/services}, read only then.  That file is parsed with Twisted's own
L{twisted.runner.inetdconf.ServicesConf}, which is exactly this job.
"""

from __future__ import annotations

from twisted.runner.inetdconf import InvalidServicesConfError, ServicesConf

from netd.importers.model import isNumber

__all__ = ["CLASSIC_PORTS", "PortTable", "UnknownService"]

#: Port numbers of the services inetd and xinetd are used for, TCP and UDP alike unless
#: the name says otherwise.  From IANA's registry, as Debian's /etc/services has them.
CLASSIC_PORTS: dict[str, int] = {
    "tcpmux": 1,
    "echo": 7,
    "discard": 9,
    "systat": 11,
    "daytime": 13,
    "netstat": 15,
    "qotd": 17,
    "chargen": 19,
    "ftp-data": 20,
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "time": 37,
    "whois": 43,
    "domain": 53,
    "tftp": 69,
    "gopher": 70,
    "finger": 79,
    "http": 80,
    "www": 80,
    "pop3": 110,
    "sunrpc": 111,
    "auth": 113,
    "ident": 113,
    "nntp": 119,
    "ntp": 123,
    "imap2": 143,
    "imap": 143,
    "snmp": 161,
    "https": 443,
    "exec": 512,
    "biff": 512,
    "login": 513,
    "shell": 514,
    "syslog": 514,
    "printer": 515,
    "talk": 517,
    "ntalk": 518,
    "uucp": 540,
    "klogin": 543,
    "kshell": 544,
    "submission": 587,
    "rsync": 873,
    "swat": 901,
    "telnets": 992,
    "imaps": 993,
    "pop3s": 995,
    "cvspserver": 2401,
    "svn": 3690,
    "nrpe": 5666,
    "git": 9418,
    "amanda": 10080,
}

#: Names that mean a different service over UDP than over TCP.
_UDP_ONLY = {"biff": 512, "syslog": 514, "talk": 517, "ntalk": 518}
_TCP_ONLY = {"exec": 512, "login": 513, "shell": 514, "printer": 515}


class UnknownService(LookupError):
    """A service name found neither in the table nor in the services file."""


class PortTable:
    """
    Looks names up in L{CLASSIC_PORTS}, then in C{servicesFile}.

    @ivar servicesFile: the /etc/services-format file for other names, or C{None} for
        none.
    """

    def __init__(self, servicesFile: str | None = "/etc/services") -> None:
        self.servicesFile = servicesFile
        self._file: dict[tuple[str, str], int] | None = None

    def port(self, name: str, transport: str) -> int:
        """
        The port of service C{name} over C{transport} (C{"tcp"} or C{"udp"}); a number
        is its own port.

        @raise UnknownService: when the name is nowhere.
        @raise OSError: when the services file is needed and cannot be read.
        @raise ValueError: when it is needed and garbled.
        """
        if isNumber(name):
            if int(name) > 65535:
                raise ValueError(f"{name} is not a port number (0-65535)")
            return int(name)
        other = _TCP_ONLY if transport == "udp" else _UDP_ONLY
        if name in CLASSIC_PORTS and name not in other:
            return CLASSIC_PORTS[name]
        port = self._fromFile().get((name, transport))
        if port is None:
            where = f"netd's table nor {self.servicesFile}" if self.servicesFile else "netd's table"
            raise UnknownService(f"service {name!r} ({transport}) is in neither {where}")
        return port

    def _fromFile(self) -> dict[tuple[str, str], int]:
        if self.servicesFile is None:
            return {}
        if self._file is None:
            known = ServicesConf()
            with open(self.servicesFile) as stream:
                try:
                    known.parseFile(stream)
                except InvalidServicesConfError as e:
                    raise ValueError(f"{self.servicesFile}: {e}") from None
            self._file = dict(known.services)
        return self._file
