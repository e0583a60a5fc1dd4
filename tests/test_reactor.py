"""
The reactor choice, as a pure function of fake platforms; installation is not tested here
(a unit test must never install a reactor).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from netd.reactor import REACTORS, Platform, chooseReactorName, installedReactorName


class ChooseReactorTests(SynchronousTestCase):
    def test_linuxUsesEpoll(self) -> None:
        """Linux gets epoll."""
        self.assertEqual(chooseReactorName(Platform("linux")), "epoll")

    def test_macosUsesKqueue(self) -> None:
        """macOS gets kqueue, not Twisted's default select."""
        self.assertEqual(chooseReactorName(Platform("darwin")), "kqueue")

    def test_bsdsUseKqueue(self) -> None:
        """Each BSD gets kqueue."""
        for system in ("freebsd14", "openbsd7", "netbsd10", "dragonfly6"):
            self.assertEqual(chooseReactorName(Platform(system)), "kqueue", system)

    def test_windowsUsesIocpWhenImportable(self) -> None:
        """Windows gets IOCP when twisted-iocpsupport can be imported."""
        self.assertEqual(chooseReactorName(Platform("win32", hasIOCP=True)), "iocp")

    def test_windowsFallsBackToSelect(self) -> None:
        """Windows without IOCP support falls back to select, the last resort."""
        self.assertEqual(chooseReactorName(Platform("win32", hasIOCP=False)), "select")
        self.assertEqual(chooseReactorName(Platform("cygwin")), "select")

    def test_otherPosixUsesPoll(self) -> None:
        """Other POSIX systems get poll."""
        for system in ("sunos5", "aix7", "haiku1"):
            self.assertEqual(chooseReactorName(Platform(system)), "poll", system)

    def test_everyChoiceIsInstallable(self) -> None:
        """Every name the choice can return is one netd knows how to install."""
        for system in ("linux", "darwin", "freebsd14", "win32", "sunos5"):
            for iocp in (True, False):
                self.assertIn(chooseReactorName(Platform(system, iocp)), REACTORS)

    def test_currentPlatform(self) -> None:
        """The current platform is described by sys.platform."""
        import sys

        self.assertEqual(Platform.current().system, sys.platform)

    def test_installedReactorIsNamed(self) -> None:
        """Once a reactor is installed its netd name is known (or None before)."""
        import sys

        name = installedReactorName()
        if "twisted.internet.reactor" in sys.modules:
            self.assertIn(name, REACTORS)
        else:
            self.assertIsNone(name)
