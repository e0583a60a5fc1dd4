"""
Tests for L{netd.admin}: health, metrics, the services page and the tutorial's WSGI
application, in memory (C{StubTreq} against the root resource, a real L{Daemon} on a
memory reactor), and the admin service's listener and thread pool.
"""

from __future__ import annotations

import io
import json
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.wsgi import WSGIResource
from zope.interface import implementer
from zope.interface.verify import verifyObject

from netd.admin import AdminService
from netd.admin.collector import DaemonCollector
from netd.admin.metrics import daemonRegistry
from netd.admin.site import AdminSite, adminRoot
from netd.admin.tutorial import makeApplication
from netd.admission.guard import GuardedFactory, ServiceGuard
from netd.config.policy import POLICY_KEYS, buildPolicy
from netd.errors import StartupError
from netd.protocols import simple
from netd.serving.daemon import Daemon
from netd.stats import DURATION_BUCKETS
from netd.tap import makeService
from tests.support import PEER, makeContext
from tests.test_guard import Transport, lose
from tests.test_tap import RaisingReactor, Reactor, parse

#: Sat Nov 21 2026, 14:30 UTC: the time the fake clocks tell.
NOW = 1795271400.0
ADMIN = "tcp:9100:interface=127.0.0.1"


@implementer(IReactorFromThreads)
class SynchronousReactorThreads:
    """Runs what a WSGI thread hands the reactor thread at once, in the caller."""

    def callFromThread(self, callable: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        callable(*args, **kwargs)


class SynchronousThreadPool:
    """A thread pool that runs each call at once, in the caller."""

    def callInThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)


def buildDaemon(*argv: str) -> Daemon:
    """A real daemon for C{argv} on a memory reactor that tells the time as L{NOW}."""
    reactor = Reactor()
    reactor.advance(NOW)
    return Daemon(parse(*argv).config, reactor, stderr=io.StringIO())


def client(daemon: Daemon, seconds: Callable[[], float] | None = None) -> StubTreq:
    """An in-memory HTTP client of C{daemon}'s admin site; WSGI runs synchronously."""
    clock = seconds or daemon.reactor.seconds
    wsgi = WSGIResource(
        SynchronousReactorThreads(), SynchronousThreadPool(), makeApplication(clock)
    )
    return StubTreq(adminRoot(daemon, daemonRegistry(daemon), wsgi))


class Response:
    """What one request got: status, headers and body."""

    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


def fetch(test: SynchronousTestCase, http: StubTreq, path: str, method: str = "GET") -> Response:
    response = test.successResultOf(http.request(method, "http://127.0.0.1:9100" + path))
    body = test.successResultOf(response.content())
    return Response(response.code, response.headers, body)


def samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode("utf-8"))
        for sample in family.samples
    }


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


class HealthTests(SynchronousTestCase):
    def test_healthyWhenEveryListenerIsUp(self) -> None:
        """With every listener bound, /healthz answers 200 and one line of JSON saying ok."""
        daemon = buildDaemon("--proto", "echo")
        daemon.privilegedStartService()
        response = fetch(self, client(daemon), "/healthz")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertEqual(response.body, b'{"status":"ok"}\n')

    def test_unavailableNamesEveryProblem(self) -> None:
        """With listeners down, /healthz answers 503 and the reason names each of them."""
        daemon = buildDaemon(
            "--proto", "echo", "--listen", "tcp:7:interface=127.0.0.1", "--listen", "udp:7"
        )
        response = fetch(self, client(daemon), "/healthz")
        self.assertEqual(response.code, 503)
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertEqual(response.body.count(b"\n"), 1)
        self.assertEqual(
            json.loads(response.body),
            {
                "status": "unavailable",
                "reason": "echo: tcp:7:interface=127.0.0.1 is not listening; "
                "echo: udp:7 is not listening",
            },
        )

    def test_headHasHeadersOnly(self) -> None:
        """HEAD /healthz gets the status and headers of GET, no body, and logs nothing."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        daemon = buildDaemon("--proto", "echo")
        daemon.privilegedStartService()
        response = fetch(self, client(daemon), "/healthz", "HEAD")
        self.assertEqual((response.code, response.body), (200, b""))
        self.assertEqual(response.header("content-length"), str(len(b'{"status":"ok"}\n')))
        self.assertEqual([e for e in events if "HEAD" in e.get("log_format", "")], [])

    def test_otherMethodsNotAllowed(self) -> None:
        """Any method but GET and HEAD on an admin page is 405, naming the methods that work."""
        http = client(buildDaemon("--proto", "echo"))
        for path, method in (("/healthz", "POST"), ("/metrics", "PUT"), ("/services", "DELETE")):
            response = fetch(self, http, path, method)
            self.assertEqual(response.code, 405, (path, method))
            self.assertEqual(response.header("allow"), "GET, HEAD")


class MetricsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.daemon = buildDaemon("--proto", "echo", "--listen", "tcp:7", "--listen", "udp:7")
        self.daemon.privilegedStartService()
        [self.runtime] = self.daemon.runtimes()
        self.stats = self.runtime.guard.stats

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = fetch(self, client(self.daemon), "/metrics")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.header("content-type"), "text/plain; version=1.0.0; charset=utf-8"
        )
        return samples(response.body)

    def test_countersAsCounted(self) -> None:
        """What the service counted is what /metrics shows, by service and reason."""
        self.stats.accepted += 3
        self.stats.active += 1
        self.stats.refused["denied"] += 2
        self.stats.closed["client closed"] += 2
        self.stats.bytesIn += 10
        self.stats.bytesOut += 20
        self.stats.datagramsIn += 4
        self.stats.datagramsOut += 3
        self.stats.dropped["source-port"] += 1
        self.daemon.reloads, self.daemon.reloadFailures = 2, 1
        found = self.scrape()
        echo = labels(service="echo")
        expected = {
            ("netd_connections_accepted_total", echo): 3,
            ("netd_connections_active", echo): 1,
            ("netd_connections_refused_total", labels(service="echo", reason="denied")): 2,
            ("netd_connections_closed_total", labels(service="echo", reason="client closed")): 2,
            ("netd_received_bytes_total", echo): 10,
            ("netd_sent_bytes_total", echo): 20,
            ("netd_datagrams_received_total", echo): 4,
            ("netd_datagrams_sent_total", echo): 3,
            ("netd_datagrams_dropped_total", labels(service="echo", reason="source-port")): 1,
            ("netd_config_reloads_total", labels()): 2,
            ("netd_config_reload_failures_total", labels()): 1,
            ("netd_listener_up", labels(service="echo", listener="tcp:7")): 1,
            ("netd_listener_up", labels(service="echo", listener="udp:7")): 1,
        }
        self.assertEqual({key: found.get(key) for key in expected}, expected)

    def test_durationHistogramIsCumulative(self) -> None:
        """Durations become a cumulative histogram whose +Inf bucket is the count of connections."""
        for seconds in (0.0005, 0.2, 0.3, 7200.0):
            self.stats.observeDuration(seconds)
        found = self.scrape()

        def bucket(le: str) -> float | None:
            return found.get(
                ("netd_connection_duration_seconds_bucket", labels(service="echo", le=le))
            )

        self.assertEqual(
            [bucket(le) for le in ("0.001", "0.1", "0.5", "3600.0", "+Inf")], [1, 1, 3, 3, 4]
        )
        self.assertEqual(
            len([key for key in found if key[0] == "netd_connection_duration_seconds_bucket"]),
            len(DURATION_BUCKETS) + 1,
        )
        echo = labels(service="echo")
        self.assertEqual(found[("netd_connection_duration_seconds_count", echo)], 4)
        self.assertAlmostEqual(found[("netd_connection_duration_seconds_sum", echo)], 7200.5005)

    def test_openConnectionBytesCountNow(self) -> None:
        """Bytes of a connection still open are counted at once, and not again when it ends."""
        factory = GuardedFactory(self.runtime.guard, self.runtime.served.stream)
        protocol = factory.buildProtocol(PEER)
        protocol.makeConnection(Transport(peerAddress=PEER))
        protocol.dataReceived(b"hello")
        found = self.scrape()
        echo = labels(service="echo")
        self.assertEqual(found[("netd_received_bytes_total", echo)], 5)
        self.assertEqual(found[("netd_sent_bytes_total", echo)], 5)
        lose(protocol)
        found = self.scrape()
        self.assertEqual(found[("netd_received_bytes_total", echo)], 5)
        self.assertEqual(found[("netd_connection_duration_seconds_count", echo)], 1)

    def test_listenerDownIsZero(self) -> None:
        """A listener that is not bound is 0 in netd_listener_up."""
        daemon = buildDaemon("--proto", "echo", "--listen", "tcp:7")
        found = samples(fetch(self, client(daemon), "/metrics").body)
        self.assertEqual(found[("netd_listener_up", labels(service="echo", listener="tcp:7"))], 0)

    def test_processMetricsInOwnRegistry(self) -> None:
        """Process and platform metrics are served, from a registry of this daemon, not the global one."""
        found = self.scrape()
        names = {name for name, _ in found}
        self.assertIn("python_info", names)
        self.assertIn("process_open_fds", names)
        collectors = list(getattr(REGISTRY, "_collector_to_names", {}))
        self.assertFalse(any(isinstance(c, DaemonCollector) for c in collectors))

    def test_everyFamilyHasTheServiceLabel(self) -> None:
        """Every per-service family of netd is labelled with the service, whatever was counted."""
        families = text_string_to_metric_families(
            fetch(self, client(self.daemon), "/metrics").body.decode("utf-8")
        )
        netd = [f for f in families if f.name.startswith("netd_") and "reload" not in f.name]
        self.assertEqual(len(netd), 11)
        for family in netd:
            for sample in family.samples:
                self.assertEqual(sample.labels["service"], "echo", family.name)


class DurationTests(SynchronousTestCase):
    def test_finishedConnectionIsObserved(self) -> None:
        """A finished connection adds its duration to the service's histogram, once."""
        clock = Clock()
        guard = ServiceGuard("echo", buildPolicy({}), clock)
        factory = GuardedFactory(guard, simple.buildEcho(makeContext("echo", clock)).stream)
        protocol = factory.buildProtocol(PEER)
        protocol.makeConnection(Transport(peerAddress=PEER))
        clock.advance(0.2)
        lose(protocol)
        expected = [0] * (len(DURATION_BUCKETS) + 1)
        expected[DURATION_BUCKETS.index(0.5)] = 1
        self.assertEqual(guard.stats.durationCounts, expected)
        self.assertAlmostEqual(guard.stats.durationSum, 0.2)


class ServicesTests(SynchronousTestCase):
    def test_shape(self) -> None:
        """/services lists each service with protocol, listeners, settings, policy, connections and counters."""
        daemon = buildDaemon(
            "--proto",
            "greeting",
            "--message",
            "hi",
            "--listen",
            "tcp:17:interface=127.0.0.1",
            "--deny",
            "192.0.2.0/24",
            "--max-connections",
            "5",
        )
        daemon.privilegedStartService()
        daemon.runtimes()[0].guard.stats.accepted += 1
        response = fetch(self, client(daemon), "/services")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("content-type"), "application/json")
        [service] = json.loads(response.body)["services"]
        self.assertEqual(
            (service["name"], service["protocol"], service["connections"]),
            ("greeting", "greeting", 0),
        )
        self.assertEqual(
            service["listeners"],
            [
                {
                    "description": "tcp:17:interface=127.0.0.1",
                    "kind": "stream",
                    "address": "0.0.0.0:17",
                    "up": True,
                    "error": None,
                }
            ],
        )
        self.assertEqual(service["settings"], {"message": "hi"})
        policy = service["policy"]
        self.assertEqual(
            (policy["allow"], policy["deny"], policy["max-connections"]),
            ([], ["192.0.2.0/24"], 5),
        )
        self.assertEqual(policy["idle-timeout"], 300.0)
        self.assertEqual(set(policy), {key.name for key in POLICY_KEYS})
        self.assertEqual(service["stats"]["accepted"], 1)
        self.assertEqual(
            set(service["stats"]),
            {
                "accepted",
                "active",
                "refused",
                "closed",
                "bytesIn",
                "bytesOut",
                "datagramsIn",
                "datagramsOut",
                "dropped",
                "durationCounts",
                "durationSum",
            },
        )

    def test_unboundListenerIsNull(self) -> None:
        """A listener not bound has a null address and is not up."""
        response = fetch(self, client(buildDaemon("--proto", "echo")), "/services")
        [listener] = json.loads(response.body)["services"][0]["listeners"]
        self.assertEqual((listener["address"], listener["up"]), (None, False))


class Call:
    """One call of the WSGI application with a fake environ."""

    def __init__(self, path: str, query: str = "", method: str = "GET") -> None:
        app = makeApplication(lambda: NOW)
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
        self.body = b"".join(app(environ, self.startResponse))

    def startResponse(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        self.status = status
        self.headers = dict(headers)
        return lambda data: None


class ApplicationTests(SynchronousTestCase):
    def test_helloEscapesTheName(self) -> None:
        """A name is shown as text: markup in it is escaped, never run."""
        call = Call("/hello", "name=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        self.assertEqual(call.status, "200 OK")
        self.assertEqual(call.headers["Content-Type"], "text/html; charset=utf-8")
        self.assertIn(b"Hello, &lt;script&gt;alert(1)&lt;/script&gt;!", call.body)
        self.assertNotIn(b"<script>", call.body)
        self.assertEqual(call.headers["Content-Length"], str(len(call.body)))

    def test_helloDefaultsToWorld(self) -> None:
        """Without a name (or with an empty one) the greeting is Hello, World!"""
        self.assertIn(b"Hello, World!", Call("/hello").body)
        self.assertIn(b"Hello, World!", Call("/hello", "name=").body)

    def test_helloReadsUTF8(self) -> None:
        """A name in UTF-8 is greeted as written."""
        self.assertIn("Hello, Zoë!".encode(), Call("/hello", "name=Zo%C3%AB").body)

    def test_localtimeIsXML(self) -> None:
        """/localtime is an XML document holding the local time in ctime form."""
        call = Call("/localtime")
        self.assertEqual(call.status, "200 OK")
        self.assertEqual(call.headers["Content-Type"], "application/xml")
        self.assertTrue(call.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n'))
        element = ElementTree.fromstring(call.body)
        self.assertEqual((element.tag, element.text), ("localtime", time.ctime(NOW)))

    def test_unknownPathNotFound(self) -> None:
        """Any other path is 404."""
        self.assertEqual(Call("/goodbye").status, "404 Not Found")
        self.assertEqual(Call("/hello/there").status, "404 Not Found")

    def test_otherMethodsNotAllowed(self) -> None:
        """A method other than GET or HEAD is 405, with an Allow header naming those two."""
        for method in ("POST", "DELETE"):
            call = Call("/hello", method=method)
            self.assertEqual(call.status, "405 Method Not Allowed")
            self.assertEqual(call.headers["Allow"], "GET, HEAD")

    def test_headHasHeadersOnly(self) -> None:
        """HEAD gets the headers of GET, with no body."""
        call = Call("/localtime", method="HEAD")
        self.assertEqual((call.status, call.body), ("200 OK", b""))
        self.assertEqual(call.headers["Content-Length"], str(len(Call("/localtime").body)))


class SiteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.http = client(buildDaemon("--proto", "echo"), lambda: NOW)

    def test_fakeReactorProvidesItsInterface(self) -> None:
        """The synchronous reactor used here provides IReactorFromThreads."""
        self.assertTrue(verifyObject(IReactorFromThreads, SynchronousReactorThreads()))

    def test_helloThroughTheSite(self) -> None:
        """/hello is served by the WSGI application, the name escaped."""
        response = fetch(self, self.http, "/hello?name=%3Cb%3Ex%3C/b%3E")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("content-type"), "text/html; charset=utf-8")
        self.assertIn(b"Hello, &lt;b&gt;x&lt;/b&gt;!", response.body)

    def test_localtimeThroughTheSite(self) -> None:
        """/localtime is served by the WSGI application as XML."""
        response = fetch(self, self.http, "/localtime")
        self.assertEqual(response.header("content-type"), "application/xml")
        self.assertEqual(ElementTree.fromstring(response.body).text, time.ctime(NOW))

    def test_methodNotAllowedThroughTheSite(self) -> None:
        """A PUT to /localtime is 405 with Allow: GET, HEAD."""
        response = fetch(self, self.http, "/localtime", "PUT")
        self.assertEqual(response.code, 405)
        self.assertEqual(response.header("allow"), "GET, HEAD")

    def test_anythingElseNotFound(self) -> None:
        """The root, unknown paths and paths below the pages are 404."""
        for path in ("/", "/nope", "/healthz/x", "/hello/x", "/metrics/"):
            self.assertEqual(fetch(self, self.http, path).code, 404, path)


class AdminServiceTests(SynchronousTestCase):
    def test_bindsOnStartupAndLogs(self) -> None:
        """--admin binds the admin site in privileged startup, on loopback, and logs it like a listener."""
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        reactor = Reactor()
        daemon = makeService(parse("--proto", "echo", "--admin", "9100"), reactor)
        daemon.privilegedStartService()
        [admin] = [(p, f, i) for p, f, _, i in reactor.tcpServers if p == 9100]
        self.assertIsInstance(admin[1], AdminSite)
        self.assertEqual(admin[2], "127.0.0.1")
        [up] = [e for e in events if "listening on" in e["log_format"] and e["service"] == "admin"]
        self.assertEqual((up["transport"], up["address"]), ("TCP", "0.0.0.0:9100"))
        self.assertEqual(daemon.problems(), [])

    def test_busyPortStopsStartupWithOneLine(self) -> None:
        """A busy admin port ends startup with netd's one-line error naming it."""
        reactor = RaisingReactor(
            listenException=CannotListenError(
                "127.0.0.1", 9100, OSError(98, "Address already in use")
            )
        )
        service = AdminService(buildDaemon("--proto", "echo"), ADMIN, reactor)
        error = self.assertRaises(StartupError, service.privilegedStartService)
        self.assertEqual(
            error.message,
            "admin: cannot listen on tcp:9100:interface=127.0.0.1: Address already in use",
        )

    def test_threadPoolLivesWithTheService(self) -> None:
        """The WSGI thread pool starts with the service and leaves no thread running once it stops."""
        reactor = Reactor()
        service = AdminService(buildDaemon("--proto", "echo"), ADMIN, reactor)
        pool = service.threadpool
        self.assertFalse(pool.started)
        service.privilegedStartService()
        service.startService()
        self.assertTrue(pool.started)
        ran = threading.Event()
        pool.callInThread(ran.set)
        self.assertTrue(ran.wait(10))
        stopped = service.stopService()
        for _ in range(1000):  # the worker reports itself idle a moment after its work
            if stopped.called:
                break
            time.sleep(0.001)
            reactor.advance(0.01)
        self.successResultOf(stopped)
        self.assertFalse(pool.started)
        self.assertEqual([t for t in pool.threads if t.is_alive()], [])
        self.assertIsNone(service.listener.port)
