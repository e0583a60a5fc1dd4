"""
The greeting banner.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from netd.protocols.greeting import DEFAULT_MESSAGE, banner, buildGreeting
from tests.support import connect, makeContext


class GreetingTests(SynchronousTestCase):
    def test_defaultBannerThenClose(self) -> None:
        """By default a client gets 'Thank you for connecting' and CRLF, then the close."""
        protocol, transport = connect(buildGreeting(makeContext(message=DEFAULT_MESSAGE)))
        self.assertEqual(transport.value(), b"Thank you for connecting\r\n")
        self.assertTrue(transport.disconnecting)

    def test_customMessageUtf8(self) -> None:
        """A custom message is sent as UTF-8 with CRLF added."""
        protocol, transport = connect(buildGreeting(makeContext(message="Grüß dich")))
        self.assertEqual(transport.value(), "Grüß dich\r\n".encode())

    def test_messageEndingInNewlineIsKept(self) -> None:
        """A message that already ends with a newline gets no second one."""
        self.assertEqual(banner("two\r\nlines\n"), b"two\r\nlines\n")
