"""
The policy wrapper every stream connection goes through: admission, the PROXY header,
timeouts, accounting, and one log line when it ends.

One L{ServiceGuard} per service holds what its listeners share (the admission rules,
live counts, statistics, the set of open connections); one L{GuardedFactory} per
listener wraps the protocol's factory, and one L{GuardedProtocol} per connection wraps
the protocol.  The per-chunk work is two additions; timeouts are enforced by one
periodic sweep per service instead of a timer per connection, which keeps an idle
connection cheap in memory and an active one free of timer resets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    IProtocol,
    IProtocolFactory,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from zope.interface import alsoProvides, directlyProvides, providedBy

from netd.address import formatAddress
from netd.admission.policy import Policy
from netd.admission.proxyheader import InvalidProxyHeader, ProxyHeaderParser
from netd.admission.rules import Admission, LiveCounts
from netd.logs.throttled import ThrottledLog
from netd.stats import ServiceStats

__all__ = ["GuardedFactory", "GuardedProtocol", "ServiceGuard"]

#: How long a PROXY-protocol peer may take to send its header.
PROXY_HEADER_TIMEOUT = 10.0
#: The sweep runs this many times per shortest timeout (so a timeout fires late by at
#: most a tenth of itself), and at least this often.
SWEEPS_PER_TIMEOUT = 10
MIN_SWEEP = 0.05


def peerHost(address: IAddress) -> str | None:
    """The literal IP of an address, or C{None} for a unix socket."""
    return getattr(address, "host", None)


class ServiceGuard:
    """
    What one service's listeners share.  L{update} swaps in a new policy on reload,
    keeping live counts and open connections.
    """

    log = Logger()

    def __init__(
        self, name: str, policy: Policy, clock: Any, stats: ServiceStats | None = None
    ) -> None:
        self.name = name
        self.clock = clock
        self.stats = stats or ServiceStats()
        self.counts = LiveCounts()
        self.connections: set[GuardedProtocol] = set()
        self._idleWaiters: list[defer.Deferred[None]] = []
        self.refusals = ThrottledLog(self.log, clock)
        self._sweep: LoopingCall | None = None
        self._sweepPeriod = 0.0
        self.update(policy)

    def update(self, policy: Policy) -> None:
        """Apply a new policy to new connections (and timeouts to all)."""
        previous = getattr(self, "admission", None)
        self.policy = policy
        self.admission = Admission(policy, self.clock, self.counts, previous)
        self.banner = policy.refusedBanner.encode("utf-8") if policy.refusedBanner else None
        self._scheduleSweep()

    def _scheduleSweep(self) -> None:
        timeouts = [t for t in (self.policy.idleTimeout, self.policy.maxLifetime) if t > 0]
        period = max(MIN_SWEEP, min(timeouts + [PROXY_HEADER_TIMEOUT]) / SWEEPS_PER_TIMEOUT)
        running = self._sweep is not None and self._sweep.running
        if running and period == self._sweepPeriod:
            return
        self.stopSweeping()
        self._sweepPeriod = period
        self._sweep = LoopingCall(self.sweep)
        self._sweep.clock = self.clock
        if running:  # a reload must not stop the timeouts
            self.startSweeping()

    def startSweeping(self) -> None:
        if self._sweep is not None and not self._sweep.running:
            self._sweep.start(self._sweepPeriod, now=False)

    def stopSweeping(self) -> None:
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()

    def sweep(self) -> None:
        """Close connections past their idle timeout, lifetime or PROXY-header deadline."""
        now = self.clock.seconds()
        idle, lifetime = self.policy.idleTimeout, self.policy.maxLifetime
        for connection in list(self.connections):
            connection.check(now, idle, lifetime)

    def refused(self, address: IAddress, reason: str) -> None:
        """Count a refusal and log it, once per peer per minute."""
        self.stats.refused[reason] += 1
        peer = peerHost(address) or formatAddress(address)
        self.refusals.warn(
            (peer, reason),
            "{service} refused {peer}: {reason} ({repeats} since the last report)",
            service=self.name,
            peer=peer,
            reason=reason,
        )

    def whenIdle(self) -> defer.Deferred[None]:
        """
        A L{Deferred} that fires once no connection is open (at once if none is): a
        graceful stop or a removed service waits on this event rather than polling.
        Cancelling it only stops the waiting.
        """
        if not self.connections:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred(self._idleWaiters.remove)
        self._idleWaiters.append(waiter)
        return waiter

    def forget(self, connection: GuardedProtocol) -> None:
        """C{connection} has ended and reported it: if it was the last, tell the waiters."""
        self.connections.discard(connection)
        if not self.connections and self._idleWaiters:
            waiters, self._idleWaiters = self._idleWaiters, []
            for waiter in waiters:
                waiter.callback(None)

    def abortAll(self) -> None:
        """Abort every open connection (at the end of a graceful stop)."""
        for connection in list(self.connections):
            connection.close("shutdown", abort=True)


def _none() -> None:
    return None


class Refuse(Protocol):
    """A refusal where C{None} cannot be returned: abort as soon as connected."""

    def connectionMade(self) -> None:
        self.transport.abortConnection()


class RefusedBanner(Protocol):
    """Tell a refused client why, then close."""

    def __init__(self, banner: bytes) -> None:
        self.banner = banner

    def connectionMade(self) -> None:
        self.transport.write(self.banner)
        self.transport.loseConnection()


class GuardedFactory(WrappingFactory):
    """
    Wraps one listener's protocol factory with its service's L{ServiceGuard}.

    A refused peer gets C{None} from L{buildProtocol} (Twisted closes the socket at
    once) or the refusal banner; a C{None} from the wrapped factory is passed through,
    never wrapped.  Behind a PROXY-protocol listener (C{proxied}) nothing is decided
    until the header names the real client.

    @ivar trustedProxies: for a proxied listener, the peers whose header is believed;
        C{None} (the default) takes the service policy's C{trusted-proxies}.
    @ivar wrapped: whether another factory wraps this one (Twisted's TLS factory does,
        for C{ssl:}): it would wrap a C{None} and crash, so a refusal is a protocol that
        aborts the connection instead.
    """

    noisy = False

    def __init__(
        self,
        guard: ServiceGuard,
        wrappedFactory: IProtocolFactory,
        proxied: bool = False,
        trustedProxies: Any = None,
        wrapped: bool = False,
    ) -> None:
        super().__init__(wrappedFactory)
        self.guard = guard
        self.proxied = proxied
        self.trustedProxies = trustedProxies
        self.nothing: Any = Refuse if wrapped else _none

    def logPrefix(self) -> str:
        return self.guard.name

    def buildProtocol(self, addr: IAddress) -> IProtocol | None:
        if self.proxied:
            trusted = self.trustedProxies or self.guard.policy.trustedProxies
            if not any(map(trusted.allows, _proxyHosts(addr))):
                self.guard.refused(addr, "untrusted-proxy")
                return self.nothing()
            return GuardedProtocol(self, None)
        return self.admit(addr, None)

    def admit(self, addr: IAddress, pending: GuardedProtocol | None) -> Any:
        """
        Decide on a peer; build (or, behind a proxy, complete) its protocol.

        @return: the L{GuardedProtocol}, or for a refusal the banner protocol, C{None},
            or (when wrapped) a protocol that aborts.
        """
        guard = self.guard
        admission = guard.admission
        host = peerHost(addr)
        key = admission.key(host)
        reason = admission.admit(host, key)
        if reason is not None:
            guard.refused(addr, reason)
            return RefusedBanner(guard.banner) if guard.banner is not None else self.nothing()
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None or _wrapsNothing(inner):
            admission.release(key)
            return self.nothing()
        connection = pending or GuardedProtocol(self, None)
        connection.admitted(inner, addr, key)
        return connection


class GuardedProtocol(ProtocolWrapper):
    """
    One connection: counts its bytes, keeps its start time, reads the PROXY header when
    there is one, and logs one line when it ends (service, peer, duration, bytes, why).
    """

    log = Logger()
    wrappedProtocol: Any
    bytesIn = bytesOut = 0
    endReason: str | None = None
    key: str | None = None
    _closing = False
    #: Out of the data path: the transport counts bytes and reports the end.
    _direct = False

    def __init__(self, factory: GuardedFactory, wrappedProtocol: IProtocol | None) -> None:
        self.factory = factory
        self.wrappedProtocol = wrappedProtocol
        self.guard = factory.guard
        self.started = self.lastActive = self.guard.clock.seconds()
        self._seen = 0
        self.peer: IAddress | None = None
        self.host: IAddress | None = None
        self._parser: ProxyHeaderParser | None = None
        self._deliver: Any = self._drop

    def admitted(self, inner: IProtocol, peer: IAddress, key: str | None) -> None:
        self.wrappedProtocol = inner
        self.peer = peer
        self.key = key
        self.guard.stats.accepted += 1
        self.guard.stats.active += 1

    def makeConnection(self, transport: Any) -> None:
        inner = self.wrappedProtocol
        # Looked up on the class: wrappers (TLS) pass unknown attributes down to the
        # TCP transport below them, which offers direct mode for itself, not for them.
        if inner is not None and getattr(type(transport), "offersDirectMode", False):
            # An admitted plain TCP connection on netd's reactors: connect the protocol
            # straight to the transport, which counts bytes and reports its end to us.
            self._direct = True
            self.transport = transport
            self.connected = 1
            transport.protocol = inner
            transport.onConnectionLost = self.connectionLost
            self.guard.connections.add(self)
            inner.makeConnection(transport)
            return
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.guard.connections.add(self)
        if self.wrappedProtocol is not None:
            self._passHalfClose()
            self._deliver = self.wrappedProtocol.dataReceived
            self.wrappedProtocol.makeConnection(self)
        else:
            self._parser = ProxyHeaderParser()
            self._deliver = self._proxyData

    def dataReceived(self, data: bytes) -> None:
        self.bytesIn += len(data)
        self._deliver(data)

    def _drop(self, data: bytes) -> None:
        """Input after a refusal or a bad header: ignored while the connection closes."""

    def _proxyData(self, data: bytes) -> None:
        assert self._parser is not None
        try:
            info, rest = self._parser.feed(data)
        except (InvalidProxyHeader, ValueError) as e:
            self._parser = None
            self._deliver = self._drop
            self.guard.refused(self.transport.getPeer(), "proxy-header")
            self.log.debug("{service}: bad PROXY header: {error}", service=self.guard.name, error=e)
            self.close("bad proxy header", abort=True)
            return
        if info is None:
            return
        self._parser = None
        self._deliver = self._drop
        # Only an IP source counts: LOCAL, UNKNOWN or a unix-socket family in the header
        # leave the proxy's own address, so no header can dodge the IP rules.
        source = info.source if getattr(info.source, "host", None) else self.transport.getPeer()
        result = self.factory.admit(source, self)
        if result is not self:
            if result is not None:  # the refusal banner
                result.makeConnection(self.transport)
            else:
                self.transport.loseConnection()
            return
        if getattr(info.destination, "host", None) and source is info.source:
            self.host = info.destination
        self._passHalfClose()
        self._deliver = self.wrappedProtocol.dataReceived
        self.wrappedProtocol.makeConnection(self)
        if rest:
            self._deliver(rest)

    def _passHalfClose(self) -> None:
        """
        Be half-closeable when the protocol is (a forward relay is), so an end of the
        client's input reaches it as C{readConnectionLost} instead of closing both ways.
        """
        if IHalfCloseableProtocol.providedBy(self.wrappedProtocol):
            alsoProvides(self, IHalfCloseableProtocol)

    def readConnectionLost(self) -> None:
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.readConnectionLost()

    def writeConnectionLost(self) -> None:
        if self.wrappedProtocol is not None:
            self.wrappedProtocol.writeConnectionLost()

    def write(self, data: bytes) -> None:
        self.bytesOut += len(data)
        self.transport.write(data)

    def writeSequence(self, data: Any) -> None:
        self.bytesOut += sum(map(len, data))
        self.transport.writeSequence(data)

    def getPeer(self) -> IAddress:
        return self.peer or self.transport.getPeer()

    def getHost(self) -> IAddress:
        """The address the client connected to: behind a proxy, the one its header names."""
        return self.host or self.transport.getHost()

    def loseConnection(self) -> None:
        if self.endReason is None:
            self.endReason = "server closed"
        self.disconnecting = True  # what LineReceiver checks to stop mid-chunk
        self.transport.loseConnection()

    def check(self, now: float, idle: float, lifetime: float) -> None:
        """Called by the sweep: close if past a deadline (abort if already closing)."""
        if self._closing:
            self.close(self.endReason or "timeout", abort=True)
            return
        activity = sum(self.traffic())
        if activity != self._seen:
            self._seen = activity
            self.lastActive = now
        if self.wrappedProtocol is None and now - self.started >= PROXY_HEADER_TIMEOUT:
            self.close("proxy header timeout", abort=True)
        elif lifetime and now - self.started >= lifetime:
            self.close("max lifetime")
        elif idle and now - self.lastActive >= idle:
            self.close("idle timeout")

    def traffic(self) -> tuple[int, int]:
        """Bytes in and out so far."""
        if self._direct:
            return self.transport.bytesIn, self.transport.bytesOut
        return self.bytesIn, self.bytesOut

    def close(self, reason: str, abort: bool = False) -> None:
        """
        End the connection for C{reason}: gracefully first (buffered output is sent);
        a peer that does not read is aborted at the next sweep.
        """
        if self.endReason is None:
            self.endReason = reason
        self.disconnecting = True
        if abort or self._closing:
            self.transport.abortConnection()
            return
        self._closing = True
        # A registered producer (chargen) would hold the connection open forever:
        # Twisted closes only once the producer is gone.  Stop it, then close.
        producer = getattr(self.transport, "producer", None)
        if producer is not None:
            producer.stopProducing()
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        try:
            self._ended(reason)
        finally:
            # Last, so whoever waits for the service to be idle sees this end reported.
            self.guard.forget(self)

    def _ended(self, reason: Failure | None) -> None:
        guard = self.guard
        inner = self.wrappedProtocol
        if inner is None or self.peer is None:
            return
        guard.admission.release(self.key)
        guard.stats.active -= 1
        bytesIn, bytesOut = self.traffic()
        guard.stats.bytesIn += bytesIn
        guard.stats.bytesOut += bytesOut
        if self._direct and self.endReason is None and self.transport.disconnecting:
            self.endReason = "server closed"
        why = self.endReason or _why(reason)
        guard.stats.closed[why] += 1
        guard.stats.observeDuration(duration := guard.clock.seconds() - self.started)
        if guard.policy.logConnections:
            self._logEnd(duration, bytesIn, bytesOut, why)
        self.wrappedProtocol = None
        if not self._direct:  # in direct mode the transport has told the protocol itself
            inner.connectionLost(reason)

    def _logEnd(self, duration: float, bytesIn: int, bytesOut: int, why: str) -> None:
        self.log.info(
            "{service} {peer} closed after {duration:.3f}s, {bytesIn} bytes in, {bytesOut} bytes out: {reason}",
            service=self.guard.name,
            peer=formatAddress(self.peer),
            duration=duration,
            bytesIn=bytesIn,
            bytesOut=bytesOut,
            reason=why,
        )


def _proxyHosts(address: IAddress) -> tuple[str, ...]:
    """
    What C{trusted-proxies} judges a proxy by: its IP, or for a unix-socket peer (which
    has no address, and is on this machine) loopback, so C{haproxy:unix:} works while
    loopback is trusted (the default) and is refused when it is not.
    """
    host = peerHost(address)
    return (host,) if host is not None else ("127.0.0.1", "::1")


def _wrapsNothing(protocol: Any) -> bool:
    """
    Whether C{protocol} is a chain of Twisted wrappers around C{None}: a
    L{WrappingFactory} wraps the refusal of the factory it wraps instead of passing it on.
    """
    while isinstance(protocol, ProtocolWrapper) and not isinstance(protocol, GuardedProtocol):
        protocol = protocol.wrappedProtocol
        if protocol is None:
            return True
    return False


def _why(reason: Failure | None) -> str:
    from twisted.internet.error import ConnectionDone

    if reason is None or reason.check(ConnectionDone):
        return "client closed"
    return "connection lost"
