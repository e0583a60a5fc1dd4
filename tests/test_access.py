"""
Tests for L{netd.admission.access}: per-service CIDR allow/deny rules.
"""

from __future__ import annotations

import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from netd.admission.access import AccessRules, BadRule


def rules(allow: list[str] | None = None, deny: list[str] | None = None) -> AccessRules:
    """Parse rules, defaulting both lists to empty."""
    return AccessRules.parse(allow or [], deny or [])


class EmptyRulesTests(SynchronousTestCase):
    """
    Rules with neither list admit everyone.
    """

    def test_emptyAllowsAll(self) -> None:
        """With no rules at all, every peer, IPv4, IPv6 or unix, is allowed."""
        empty = rules()
        self.assertTrue(empty.empty)
        for host in ["127.0.0.1", "10.9.8.7", "::1", "2001:db8::1", "/run/netd.sock", ""]:
            self.assertTrue(empty.allows(host), host)

    def test_notEmpty(self) -> None:
        """A rules object with any entry is not empty, so callers must check it."""
        self.assertFalse(rules(allow=["10.0.0.0/8"]).empty)
        self.assertFalse(rules(deny=["10.0.0.0/8"]).empty)

    def test_defaultConstructorIsEmpty(self) -> None:
        """C{AccessRules()} with no arguments is the same as no rules."""
        self.assertTrue(AccessRules().empty)
        self.assertEqual(AccessRules(), rules())

    def test_frozen(self) -> None:
        """Rules cannot be changed after construction, so they are safe to share."""
        r = rules(deny=["10.0.0.0/8"])
        self.assertRaises(AttributeError, setattr, r, "deny", ())


class SingleListTests(SynchronousTestCase):
    """
    A deny-only list refuses only what it names; an allow-only list admits only it.
    """

    def test_denyOnlyRefusesDenied(self) -> None:
        """A peer inside a denied network is refused."""
        self.assertFalse(rules(deny=["10.0.0.0/8"]).allows("10.1.2.3"))

    def test_denyOnlyAllowsOthers(self) -> None:
        """With only a deny list, a peer outside every denied network is allowed."""
        self.assertTrue(rules(deny=["10.0.0.0/8"]).allows("192.0.2.1"))

    def test_allowOnlyAllowsAllowed(self) -> None:
        """A peer inside an allowed network is allowed."""
        self.assertTrue(rules(allow=["192.168.0.0/16"]).allows("192.168.44.5"))

    def test_allowOnlyRefusesOthers(self) -> None:
        """A peer outside every allowed network is refused."""
        r = rules(allow=["192.168.0.0/16", "127.0.0.0/8"])
        self.assertFalse(r.allows("10.0.0.1"))
        self.assertFalse(r.allows("::1"))

    def test_networkEdges(self) -> None:
        """The first and last address of a network match it; the ones beside it do not."""
        r = rules(allow=["10.1.0.0/16"])
        self.assertTrue(r.allows("10.1.0.0"))
        self.assertTrue(r.allows("10.1.255.255"))
        self.assertFalse(r.allows("10.0.255.255"))
        self.assertFalse(r.allows("10.2.0.0"))

    def test_everything(self) -> None:
        """C{0.0.0.0/0} matches every IPv4 peer and no IPv6 one."""
        r = rules(deny=["0.0.0.0/0"])
        self.assertFalse(r.allows("203.0.113.9"))
        self.assertTrue(r.allows("2001:db8::1"))


class MostSpecificTests(SynchronousTestCase):
    """
    The longest matching prefix decides, whichever list it is in.
    """

    def test_allowInsideDeny(self) -> None:
        """An allowed /16 inside a denied /8 admits its peers and refuses the rest of the /8."""
        r = rules(allow=["10.1.0.0/16"], deny=["10.0.0.0/8"])
        self.assertTrue(r.allows("10.1.2.3"))
        self.assertFalse(r.allows("10.2.0.1"))
        # Outside both: there is an allow list, so refused.
        self.assertFalse(r.allows("192.0.2.1"))

    def test_denyInsideAllow(self) -> None:
        """A denied /24 inside an allowed /8 refuses its peers and admits the rest of the /8."""
        r = rules(allow=["10.0.0.0/8"], deny=["10.1.2.0/24"])
        self.assertFalse(r.allows("10.1.2.3"))
        self.assertTrue(r.allows("10.1.3.3"))
        self.assertFalse(r.allows("192.0.2.1"))

    def test_orderDoesNotMatter(self) -> None:
        """The order entries are listed in never changes a decision."""
        a = rules(allow=["10.0.0.0/8", "10.1.2.0/24"], deny=["10.1.0.0/16", "0.0.0.0/0"])
        b = rules(allow=["10.1.2.0/24", "10.0.0.0/8"], deny=["0.0.0.0/0", "10.1.0.0/16"])
        for host in ["10.1.2.3", "10.1.3.3", "10.9.9.9", "192.0.2.1"]:
            self.assertEqual(a.allows(host), b.allows(host), host)
        self.assertTrue(a.allows("10.1.2.3"))
        self.assertFalse(a.allows("10.1.3.3"))
        self.assertTrue(a.allows("10.9.9.9"))
        self.assertFalse(a.allows("192.0.2.1"))

    def test_tieDenies(self) -> None:
        """The same network in both lists refuses its peers."""
        r = rules(allow=["10.0.0.0/8"], deny=["10.0.0.0/8"])
        self.assertFalse(r.allows("10.1.2.3"))

    def test_tieSingleAddressDenies(self) -> None:
        """The same address in both lists is refused, even beside a wider allow."""
        r = rules(allow=["192.0.2.7", "192.0.2.0/24"], deny=["192.0.2.7/32"])
        self.assertFalse(r.allows("192.0.2.7"))
        self.assertTrue(r.allows("192.0.2.8"))


class SingleAddressTests(SynchronousTestCase):
    """
    A bare address is a network of one.
    """

    def test_singleIPv4Deny(self) -> None:
        """A denied single IPv4 address refuses only that address."""
        r = rules(deny=["192.0.2.7"])
        self.assertFalse(r.allows("192.0.2.7"))
        self.assertTrue(r.allows("192.0.2.8"))

    def test_singleIPv4Allow(self) -> None:
        """An allowed single IPv4 address admits only that address."""
        r = rules(allow=["127.0.0.1"])
        self.assertTrue(r.allows("127.0.0.1"))
        self.assertFalse(r.allows("127.0.0.2"))

    def test_singleAddressBeatsNetwork(self) -> None:
        """A single address is more specific than any network containing it."""
        r = rules(allow=["192.0.2.7"], deny=["192.0.2.0/24"])
        self.assertTrue(r.allows("192.0.2.7"))
        self.assertFalse(r.allows("192.0.2.6"))


class IPv6Tests(SynchronousTestCase):
    """
    IPv6 networks and addresses work like IPv4 ones.
    """

    def test_network(self) -> None:
        """A peer inside an allowed IPv6 network is allowed and one outside is refused."""
        r = rules(allow=["2001:db8::/32"])
        self.assertTrue(r.allows("2001:db8:1234::5"))
        self.assertFalse(r.allows("2001:db9::1"))

    def test_mostSpecific(self) -> None:
        """The longest matching IPv6 prefix decides, as for IPv4."""
        r = rules(allow=["2001:db8::/32"], deny=["2001:db8:bad::/48"])
        self.assertFalse(r.allows("2001:db8:bad::1"))
        self.assertTrue(r.allows("2001:db8:900d::1"))

    def test_singleAddress(self) -> None:
        """A single IPv6 address in the allow list admits only that address."""
        r = rules(allow=["::1"])
        self.assertTrue(r.allows("::1"))
        self.assertFalse(r.allows("::2"))

    def test_nonCanonicalSpelling(self) -> None:
        """A peer matches however its IPv6 address is spelled."""
        r = rules(deny=["2001:db8::1"])
        self.assertFalse(r.allows("2001:0DB8:0000:0000:0000:0000:0000:0001"))

    def test_zoneStripped(self) -> None:
        """A link-local peer with a zone (C{fe80::1%eth0}) is decided by its address alone."""
        r = rules(allow=["fe80::/10"])
        self.assertTrue(r.allows("fe80::1%eth0"))
        self.assertTrue(r.allows("fe80::1%3"))
        self.assertFalse(rules(deny=["fe80::1"]).allows("fe80::1%eth0"))


class MappedTests(SynchronousTestCase):
    """
    IPv4-mapped IPv6 peers, as dual-stack sockets report IPv4 clients, obey IPv4 rules.
    """

    def test_mappedDenied(self) -> None:
        """An IPv4 client seen as C{::ffff:10.1.2.3} is refused by C{deny 10.0.0.0/8}."""
        r = rules(deny=["10.0.0.0/8"])
        self.assertFalse(r.allows("::ffff:10.1.2.3"))
        self.assertTrue(r.allows("::ffff:192.0.2.1"))

    def test_mappedAllowed(self) -> None:
        """An IPv4 client seen as C{::ffff:127.0.0.1} is admitted by C{allow 127.0.0.0/8}."""
        r = rules(allow=["127.0.0.0/8"])
        self.assertTrue(r.allows("::ffff:127.0.0.1"))
        self.assertFalse(r.allows("::ffff:10.0.0.1"))

    def test_mappedMostSpecific(self) -> None:
        """Layered IPv4 rules decide a mapped peer exactly as they decide the IPv4 peer."""
        r = rules(allow=["10.1.0.0/16"], deny=["10.0.0.0/8"])
        self.assertTrue(r.allows("::ffff:10.1.2.3"))
        self.assertFalse(r.allows("::ffff:10.2.0.1"))

    def test_mappedRuleIsIPv4(self) -> None:
        """A rule written in mapped form (C{::ffff:10.0.0.0/104}) also refuses plain IPv4 peers."""
        r = rules(deny=["::ffff:10.0.0.0/104"])
        self.assertFalse(r.allows("10.1.2.3"))
        self.assertFalse(r.allows("::ffff:10.1.2.3"))
        self.assertTrue(r.allows("11.0.0.1"))
        self.assertEqual(r.describe()["deny"], ["10.0.0.0/8"])


class CrossFamilyTests(SynchronousTestCase):
    """
    Rules of one family never match peers of the other.
    """

    def test_ipv4RuleIgnoresIPv6Peer(self) -> None:
        """An IPv4 rule never matches a (non-mapped) IPv6 peer, even one embedding its bits."""
        r = rules(deny=["0.0.0.0/0"])
        self.assertTrue(r.allows("::1"))
        # ::10.1.2.3 (IPv4-compatible, deprecated) is not a mapped address.
        self.assertTrue(r.allows("::10.1.2.3"))

    def test_ipv6RuleIgnoresIPv4Peer(self) -> None:
        """An IPv6 rule never matches an IPv4 peer."""
        r = rules(deny=["::/0"])
        self.assertTrue(r.allows("10.1.2.3"))
        self.assertFalse(r.allows("2001:db8::1"))

    def test_mixedLists(self) -> None:
        """Mixed IPv4 and IPv6 lists decide each family by its own rules."""
        r = rules(allow=["10.0.0.0/8", "2001:db8::/32"], deny=["10.66.0.0/16", "2001:db8:66::/48"])
        self.assertTrue(r.allows("10.1.1.1"))
        self.assertFalse(r.allows("10.66.1.1"))
        self.assertTrue(r.allows("2001:db8:1::1"))
        self.assertFalse(r.allows("2001:db8:66::1"))
        self.assertFalse(r.allows("192.0.2.1"))
        self.assertFalse(r.allows("2001:db9::1"))


class UnparseableHostTests(SynchronousTestCase):
    """
    Peers that are not IP addresses match no rule and never raise.
    """

    def test_unixPathWithoutAllowList(self) -> None:
        """A unix socket peer is allowed when there is only a deny list."""
        self.assertTrue(rules(deny=["0.0.0.0/0", "::/0"]).allows("/run/netd.sock"))

    def test_unixPathWithAllowList(self) -> None:
        """A unix socket peer is refused when there is an allow list."""
        self.assertFalse(rules(allow=["0.0.0.0/0", "::/0"]).allows("/run/netd.sock"))

    def test_garbageDoesNotRaise(self) -> None:
        """Odd peer strings are decided, not raised on."""
        r = rules(allow=["10.0.0.0/8"])
        for host in ["", "localhost", "10.0.0.0/8", "10.1.2.3:80", "%eth0", "999.1.1.1"]:
            self.assertFalse(r.allows(host), host)


class BadRuleTests(SynchronousTestCase):
    """
    Entries that are not literal networks are rejected with a one-line message.
    """

    def assertBadRule(self, allow: list[object], deny: list[object], *fragments: str) -> str:
        """Assert parsing fails with L{BadRule} and a message containing C{fragments}."""
        error = self.assertRaises(BadRule, AccessRules.parse, allow, deny)
        message = str(error)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message

    def test_isValueError(self) -> None:
        """A bad rule is a C{ValueError}, so generic config validation catches it."""
        self.assertTrue(issubclass(BadRule, ValueError))

    def test_hostBitsSet(self) -> None:
        """A network with host bits set is refused, suggesting the network meant."""
        message = self.assertBadRule([], ["10.0.0.1/8"], "deny:", "'10.0.0.1/8'")
        self.assertEqual(
            message, "deny: '10.0.0.1/8' is not a network (host bits set; did you mean 10.0.0.0/8?)"
        )

    def test_hostBitsSetIPv6(self) -> None:
        """An IPv6 network with host bits set is refused, in the allow list too."""
        self.assertBadRule(
            ["2001:db8::1/32"], [], "allow:", "'2001:db8::1/32'", "host bits", "2001:db8::/32"
        )

    def test_hostName(self) -> None:
        """A host name is refused, not resolved."""
        message = self.assertBadRule(["example.com"], [], "allow:", "'example.com'")
        self.assertEqual(message, "allow: 'example.com' is not an IP network")

    def test_garbage(self) -> None:
        """Text that is no kind of address is refused, naming the list and the entry."""
        self.assertBadRule([], ["10.0.0.0/8", "not a network!"], "deny:", "'not a network!'")
        self.assertBadRule(["", "10.0.0.0/8"], [], "allow:", "''")
        self.assertBadRule(["300.1.1.1"], [], "allow:", "'300.1.1.1'")

    def test_badPrefixLength(self) -> None:
        """A prefix length too long for the family is refused, saying so."""
        self.assertBadRule(["10.0.0.0/33"], [], "allow:", "'10.0.0.0/33'", "prefix length")
        self.assertBadRule([], ["::/129"], "deny:", "'::/129'", "prefix length")

    def test_zoneInRule(self) -> None:
        """An IPv6 zone in a rule is refused, since peers are matched without zones."""
        self.assertBadRule(["fe80::%eth0/64"], [], "allow:", "'fe80::%eth0/64'", "zone")

    def test_notAString(self) -> None:
        """A number in the list (as from a JSON config) is refused rather than read as an address."""
        self.assertBadRule([167772160], [], "allow:", "167772160")

    def test_bareString(self) -> None:
        """A bare string instead of a list is refused instead of being split into characters."""
        self.assertBadRule([], "10.0.0.0/8", "deny:", "'10.0.0.0/8'")  # type: ignore[arg-type]


class DescribeTests(SynchronousTestCase):
    """
    L{AccessRules.describe} shows the rules as normalized text.
    """

    def test_empty(self) -> None:
        """Empty rules describe as two empty lists."""
        self.assertEqual(rules().describe(), {"allow": [], "deny": []})

    def test_normalized(self) -> None:
        """Entries are shown in configured order, in canonical CIDR form with their length."""
        r = rules(
            allow=["192.0.2.7", " 10.0.0.0/8 ", "2001:0DB8::/32"],
            deny=["::1", "10.1.2.0/24"],
        )
        self.assertEqual(
            r.describe(),
            {
                "allow": ["192.0.2.7/32", "10.0.0.0/8", "2001:db8::/32"],
                "deny": ["::1/128", "10.1.2.0/24"],
            },
        )

    def test_roundTrip(self) -> None:
        """Parsing the described rules gives back equal rules."""
        r = rules(allow=["10.0.0.0/8", "::1"], deny=["10.1.0.0/16"])
        d = r.describe()
        self.assertEqual(AccessRules.parse(d["allow"], d["deny"]), r)

    def test_constructedFromNetworks(self) -> None:
        """Rules built directly from L{ipaddress} networks behave like parsed ones."""
        r = AccessRules(allow=(ipaddress.ip_network("10.0.0.0/8"),), deny=())
        self.assertEqual(r, rules(allow=["10.0.0.0/8"]))
        self.assertTrue(r.allows("10.1.1.1"))
        self.assertFalse(r.allows("11.1.1.1"))
