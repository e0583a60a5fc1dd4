"""
Tests for L{netd.coerce}: the one set of value readers every front end shares.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from netd import plugin
from netd.coerce import (
    boolean,
    byteSize,
    nonNegativeInt,
    nonNegativeNumber,
    positiveInt,
    text,
    yesNo,
)


class WholeNumberTests(SynchronousTestCase):
    def test_nonNegativeIntTakesZeroAndWholeValues(self) -> None:
        """Zero, integers, their text and integral floats are taken; the rest is refused."""
        self.assertEqual([nonNegativeInt(v) for v in (0, "7", 3.0)], [0, 7, 3])
        for bad in (-1, 2.5, True, "x", None, float("inf")):
            with self.assertRaises(ValueError) as caught:
                nonNegativeInt(bad)
            self.assertEqual(str(caught.exception), f"expected a whole number >= 0, got {bad!r}")

    def test_positiveIntRefusesZeroFractionsAndBooleans(self) -> None:
        """positiveInt is the same reader with a minimum of one, so 2.5 is no longer 2."""
        self.assertEqual([positiveInt(v) for v in (1, "12", 4.0)], [1, 12, 4])
        for bad in (0, "0", 2.5, True, "lots", float("-inf")):
            with self.assertRaises(ValueError) as caught:
                positiveInt(bad)
            self.assertEqual(str(caught.exception), f"expected a positive integer, got {bad!r}")

    def test_pluginKeepsItsPublicNames(self) -> None:
        """Third-party plugins import positiveInt and text from netd.plugin: the same functions."""
        self.assertIs(plugin.positiveInt, positiveInt)
        self.assertIs(plugin.text, text)


class OtherValueTests(SynchronousTestCase):
    def test_nonNegativeNumber(self) -> None:
        """Finite numbers >= 0 are taken; negative, infinite and boolean values are refused."""
        self.assertEqual(nonNegativeNumber("0.5"), 0.5)
        for bad in (-0.1, float("nan"), float("inf"), False, "soon"):
            self.assertRaises(ValueError, nonNegativeNumber, bad)

    def test_yesNoIsOneSwitchEverywhere(self) -> None:
        """Words in any case (spaces around allowed) and booleans; numbers and others refused."""
        self.assertTrue(all(yesNo(v) for v in ("yes", " On ", "TRUE", "1", True)))
        self.assertFalse(any(yesNo(v) for v in ("no", "off", "False", "0", False)))
        for bad in ("maybe", 1, 0, None):
            with self.assertRaises(ValueError) as caught:
                yesNo(bad)
            self.assertEqual(str(caught.exception), f"expected yes or no, got {bad!r}")

    def test_booleanTextAndSizes(self) -> None:
        """boolean takes only booleans, text only text, byteSize sizes with K/M/G suffixes."""
        self.assertIs(boolean(True), True)
        self.assertRaises(ValueError, boolean, "yes")
        self.assertEqual(text("hi"), "hi")
        self.assertRaises(ValueError, text, 5)
        self.assertEqual(byteSize("2K"), 2048)
        self.assertRaises(ValueError, byteSize, "0")
