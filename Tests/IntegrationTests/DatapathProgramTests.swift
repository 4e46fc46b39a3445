// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import Datapath
import Foundation
import NetAddress
import Netns
import XCTest

/// Each datapath program run once on crafted packets (BPF_PROG_TEST_RUN) inside a node netns
/// that has a route, a neighbour and a device without one: the verdict, the rewritten frame and
/// the counter of every rule.
final class DatapathProgramTests: XCTestCase {
    private let TC_ACT_UNSPEC: Int32 = -1, TC_ACT_OK: Int32 = 0, TC_ACT_SHOT: Int32 = 2, TC_ACT_REDIRECT: Int32 = 7
    private let podA: [UInt8] = [0x02, 0, 0, 0, 0, 0x0a], hostA: [UInt8] = [0x02, 0, 0, 0, 0, 0xaa]
    private let podB: [UInt8] = [0x02, 0, 0, 0, 0, 0x0b], hostB: [UInt8] = [0x02, 0, 0, 0, 0, 0xbb]
    private let neighbour: [UInt8] = [0x02, 0, 0, 0, 0, 0x99]
    private let a4: [UInt8] = [10, 50, 0, 2], b4: [UInt8] = [10, 50, 0, 3]
    private let a6 = IPAddress("fd00:50::2")!.bytes, b6 = IPAddress("fd00:50::3")!.bytes

    /// A node netns with a route, a neighbour and a blackhole; pod A on in0 (whose MAC is hostA),
    /// pod B behind a device that does not exist; the two programs, run as if on in0.
    private struct Fixture {
        let node: TestNode
        let datapath: Datapath
        let in0: Int32
        let outMAC: String
        let run: (BPFProgram, [UInt8]) throws -> (verdict: Int32, packet: [UInt8])
        let podProgram: BPFProgram
        let uplinkProgram: BPFProgram

        func counted() throws -> [PacketPath: UInt64] {
            Dictionary(grouping: try datapath.counters().filter { $0.ifindex == in0 }, by: \.path).mapValues { $0.reduce(0) { $0 + $1.packets } }
        }
    }

    private func fixture() throws -> Fixture {
        let node = try TestNode(self)
        // in0 carries hostA, as a pod's host end carries the MAC its pod sends to.
        try node.exec("ip", "link", "add", "in0", "address", "02:00:00:00:00:aa", "type", "veth", "peer", "name", "out0")
        for command in [["link", "set", "in0", "up"], ["link", "set", "out0", "up"],
                        ["addr", "add", "10.200.0.1/24", "dev", "out0"], ["-6", "addr", "add", "fd00:200::1/64", "dev", "out0", "nodad"],
                        ["neigh", "add", "10.200.0.2", "lladdr", "02:00:00:00:00:99", "dev", "out0", "nud", "permanent"],
                        ["-6", "neigh", "add", "fd00:200::2", "lladdr", "02:00:00:00:00:99", "dev", "out0", "nud", "permanent"],
                        ["route", "add", "blackhole", "198.51.100.0/24"]] {
            try shell(["nsenter", "--net=/run/netns/\(node.netns)", "ip"] + command)
        }
        try node.exec("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        let in0 = try node.ifindex(of: "in0")
        let outMAC = try XCTUnwrap(node.exec("ip", "-o", "link", "show", "out0").split(separator: " ")
            .drop { $0 != "link/ether" }.dropFirst().first.map(String.init))

        let datapath = try Datapath.open(store: EndpointStore.open(root: node.storeRoot))
        try datapath.pods.addEndpoint(addresses: [IPAddress(bytes: a4)!, IPAddress(bytes: a6)!], hostIndex: in0,
                                 podMAC: MACAddress(bytes: podA)!, hostMAC: MACAddress(bytes: hostA)!)
        try datapath.pods.addEndpoint(addresses: [IPAddress(bytes: b4)!, IPAddress(bytes: b6)!], hostIndex: 4242,
                                 podMAC: MACAddress(bytes: podB)!, hostMAC: MACAddress(bytes: hostB)!)
        let podProgram = try XCTUnwrap(BPFProgram.pinned(at: "\(node.storeRoot)/datapath/pod_egress"))
        let uplinkProgram = try XCTUnwrap(BPFProgram.pinned(at: "\(node.storeRoot)/datapath/uplink_ingress"))
        let namespace = try NetworkNamespace.open("/run/netns/\(node.netns)")
        return Fixture(node: node, datapath: datapath, in0: in0, outMAC: outMAC, run: { program, packet in
            try namespace.run { () throws(BPFError) in try program.testRun(packet: packet, ifindex: in0) }.get()
        }, podProgram: podProgram, uplinkProgram: uplinkProgram)
    }

    func testProgramsOnCraftedPackets() throws {
        let fixture = try fixture()
        let (datapath, in0, outMAC, podProgram, uplinkProgram) = (fixture.datapath, fixture.in0, fixture.outMAC,
                                                                  fixture.podProgram, fixture.uplinkProgram)
        let run = fixture.run
        _ = in0

        // Local delivery: MACs as if routed, TTL one less, checksum still right, peer redirect.
        var result = try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, b4))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(Array(result.packet[0..<6]), podB, "to the destination pod's MAC")
        XCTAssertEqual(Array(result.packet[6..<12]), hostB, "from its host end's MAC")
        XCTAssertEqual(result.packet[22], 63, "TTL decremented")
        XCTAssertEqual(Packets.checksum(Array(result.packet[14..<34])), 0, "IPv4 checksum fixed up")

        result = try run(podProgram, Packets.ipv6(from: podA, to: hostA, a6, b6))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(Array(result.packet[0..<6]), podB)
        XCTAssertEqual(result.packet[21], 63, "hop limit decremented")

        // Off the node through the FIB: neighbour known, and not known.
        result = try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, [10, 200, 0, 2]))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(Array(result.packet[0..<6]), neighbour, "to the neighbour the FIB found")
        XCTAssertEqual(MACAddress(bytes: result.packet[6..<12])?.description, outMAC, "from the egress device")
        result = try run(podProgram, Packets.ipv6(from: podA, to: hostA, a6, IPAddress("fd00:200::2")!.bytes))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(Array(result.packet[0..<6]), neighbour)
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, [10, 200, 0, 77])).verdict, TC_ACT_REDIRECT,
                       "no neighbour yet: bpf_redirect_neigh resolves it")

        // What goes to the stack, and why.
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, [203, 0, 113, 1])).verdict, TC_ACT_OK, "no route")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, [198, 51, 100, 1])).verdict, TC_ACT_OK,
                       "a blackhole route: the stack answers")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, [10, 200, 0, 1])).verdict, TC_ACT_OK, "for the node")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, b4, ttl: 1)).verdict, TC_ACT_OK, "TTL expires")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, b4, options: 1)).verdict, TC_ACT_OK, "IP options")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, b4, fragmentField: 0x2000)).verdict, TC_ACT_OK,
                       "first fragment")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, b4, fragmentField: 0x0010)).verdict, TC_ACT_OK,
                       "later fragment")
        XCTAssertEqual(try run(podProgram, Packets.ipv6(from: podA, to: hostA, a6, b6, nextHeader: 0)).verdict, TC_ACT_OK,
                       "IPv6 extension header")
        XCTAssertEqual(try run(podProgram, Packets.ipv6(from: podA, to: hostA, a6, b6, nextHeader: 58,
                                                        payload: [135] + [UInt8](repeating: 0, count: 23))).verdict, TC_ACT_OK,
                       "neighbour solicitation")
        XCTAssertEqual(try run(podProgram, Packets.arp(from: podA, senderIP: a4, targetIP: [10, 50, 0, 1])).verdict, TC_ACT_OK,
                       "ARP, the pod's own")

        // What is dropped.
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, [10, 50, 0, 99], b4)).verdict, TC_ACT_SHOT, "spoofed source")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podB, to: hostA, a4, b4)).verdict, TC_ACT_SHOT, "spoofed MAC")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, b4, a4)).verdict, TC_ACT_SHOT,
                       "another pod's address, from the wrong veth")
        // (Frames cut inside the IP header never reach a program through BPF_PROG_TEST_RUN: the
        // kernel refuses them. Headers that lie about their length stand in for them.)
        var shortHeader = Packets.ipv4(from: podA, to: hostA, a4, b4)
        shortHeader[14] = 0x44
        XCTAssertEqual(try run(podProgram, shortHeader).verdict, TC_ACT_SHOT, "IPv4 header length below 20 bytes")
        XCTAssertEqual(try run(podProgram, Packets.ipv4(from: podA, to: hostA, a4, b4, totalLength: 900)).verdict, TC_ACT_SHOT,
                       "total length beyond the packet")
        var longPayload = Packets.ipv6(from: podA, to: hostA, a6, b6)
        longPayload[18] = 0x03
        XCTAssertEqual(try run(podProgram, longPayload).verdict, TC_ACT_SHOT, "IPv6 payload length beyond the packet")

        // The uplink program: straight into a local pod, anything else on to the next program.
        result = try run(uplinkProgram, Packets.ipv4(from: neighbour, to: hostA, [10, 200, 0, 2], b4))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(Array(result.packet[0..<6]), podB)
        XCTAssertEqual(try run(uplinkProgram, Packets.ipv6(from: neighbour, to: hostA, IPAddress("fd00:200::2")!.bytes, b6)).verdict,
                       TC_ACT_REDIRECT)
        XCTAssertEqual(try run(uplinkProgram, Packets.ipv4(from: neighbour, to: hostA, [10, 200, 0, 2], [10, 200, 0, 1])).verdict,
                       TC_ACT_UNSPEC, "not for a pod: the next program decides")
        XCTAssertEqual(try run(uplinkProgram, Packets.arp(from: neighbour, senderIP: [10, 200, 0, 2], targetIP: [10, 200, 0, 1])).verdict,
                       TC_ACT_UNSPEC)

        // Every rule above was counted under its reason.
        let counted = try fixture.counted()
        _ = datapath
        let expected: [PacketPath: UInt64] = [
            .redirectPeer: 4, .redirectFIB: 2, .redirectNeigh: 1, .stackFIBOther: 1, .stackNotForwarded: 2, .stackTTL: 1,
            .stackIPOptions: 1, .stackFragment: 2, .stackIPv6Extension: 1, .stackICMPv6ND: 1, .stackNotIP: 1,
            .dropSpoofedSource: 2, .dropSpoofedMAC: 1, .dropMalformed: 3,
        ]
        for (path, packets) in expected { XCTAssertEqual(counted[path], packets, "counter \(path.name)") }
    }

    /// What must never be redirected: martian or spoofed-local sources from outside, bad IPv4
    /// checksums, special destinations, frames not addressed to the device, lying header lengths.
    func testPacketsThatMustNotPass() throws {
        let fixture = try fixture()
        let (pod, uplink) = (fixture.podProgram, fixture.uplinkProgram)
        func verdict(_ program: BPFProgram, _ packet: [UInt8]) throws -> Int32 { try fixture.run(program, packet).verdict }
        let outside: [UInt8] = [10, 200, 0, 2]

        // From outside, for pod B, with sources no sender has, or pod A's own address.
        for source in [[127, 0, 0, 1], [0, 0, 0, 0], [255, 255, 255, 255], [224, 0, 0, 5], [240, 0, 0, 1], a4] as [[UInt8]] {
            XCTAssertEqual(try verdict(uplink, Packets.ipv4(from: neighbour, to: hostA, source, b4)), TC_ACT_SHOT, "source \(source)")
        }
        for source in ["::1", "::", "ff02::1", "fe80::1", "::ffff:10.200.0.2", "fd00:50::2"] {
            XCTAssertEqual(try verdict(uplink, Packets.ipv6(from: neighbour, to: hostA, IPAddress(source)!.bytes, b6)), TC_ACT_SHOT,
                           "source \(source)")
        }
        // The node's own addresses, forged from outside: refused (another node's is a sender like any other).
        try fixture.datapath.node.setOwnAddresses([IPAddress("10.200.0.1")!, IPAddress("fd00:200::1")!])
        XCTAssertEqual(try verdict(uplink, Packets.ipv4(from: neighbour, to: hostA, [10, 200, 0, 1], b4)), TC_ACT_SHOT, "the node's own")
        XCTAssertEqual(try verdict(uplink, Packets.ipv6(from: neighbour, to: hostA, IPAddress("fd00:200::1")!.bytes, b6)), TC_ACT_SHOT)
        XCTAssertEqual(try verdict(uplink, Packets.ipv4(from: neighbour, to: hostA, [10, 200, 0, 2], b4)), TC_ACT_REDIRECT, "another's")
        // A bad IPv4 header checksum, on either program.
        var corrupt = Packets.ipv4(from: neighbour, to: hostA, outside, b4)
        corrupt[24] ^= 0xff
        XCTAssertEqual(try verdict(uplink, corrupt), TC_ACT_SHOT)
        corrupt = Packets.ipv4(from: podA, to: hostA, a4, b4)
        corrupt[25] ^= 0x01
        XCTAssertEqual(try verdict(pod, corrupt), TC_ACT_SHOT)
        // Special destinations from a pod go to the stack, never through the FIB or to a pod.
        for destination in [[0, 0, 0, 0], [255, 255, 255, 255], [224, 0, 0, 251], [240, 1, 2, 3], [169, 254, 1, 1], [127, 0, 0, 1]] as [[UInt8]] {
            XCTAssertEqual(try verdict(pod, Packets.ipv4(from: podA, to: hostA, a4, destination)), TC_ACT_OK, "destination \(destination)")
        }
        for destination in ["ff02::fb", "fe80::1", "::ffff:10.50.0.3", "::1", "::"] {
            XCTAssertEqual(try verdict(pod, Packets.ipv6(from: podA, to: hostA, a6, IPAddress(destination)!.bytes)), TC_ACT_OK,
                           "destination \(destination)")
        }
        // Frames not addressed to the device: broadcast and multicast to the stack, another host's dropped.
        let broadcast: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], multicast: [UInt8] = [0x01, 0x00, 0x5e, 0, 0, 1]
        let otherHost: [UInt8] = [0x02, 0, 0, 0, 0, 0x77]
        for program in [pod, uplink] {
            let source = program === pod ? a4 : outside
            let mac = program === pod ? podA : neighbour
            XCTAssertEqual(try verdict(program, Packets.ipv4(from: mac, to: broadcast, source, b4)), TC_ACT_OK)
            XCTAssertEqual(try verdict(program, Packets.ipv4(from: mac, to: multicast, source, b4)), TC_ACT_OK)
            XCTAssertEqual(try verdict(program, Packets.ipv4(from: mac, to: otherHost, source, b4)), TC_ACT_SHOT)
        }
        // A header length beyond the packet is malformed, not "options".
        var longHeader = Packets.ipv4(from: podA, to: hostA, a4, b4, totalLength: 33)
        longHeader[14] = 0x4f
        XCTAssertEqual(try verdict(pod, Array(longHeader.prefix(14 + 33))), TC_ACT_SHOT)

        let counted = try fixture.counted()
        XCTAssertEqual(counted[.dropMartianSource], 14)
        XCTAssertEqual(counted[.dropMalformed], 3)
        XCTAssertEqual(counted[.stackNotUnicast], 15)
        XCTAssertEqual(counted[.dropOtherHost], 2)
        XCTAssertNil(counted[.stackIPOptions])
        XCTAssertEqual(counted[.redirectPeer], 1, "nothing was delivered but from another node")
        XCTAssertNil(counted[.redirectFIB])
        XCTAssertNil(counted[.redirectNeigh])
    }

    /// A pod's frames are checked for their source before anything else, in every packet class the
    /// datapath hands to the stack as well as in those it forwards: forged addresses and MACs are
    /// dropped whether the packet carries options, is a fragment, has extension headers, is sent
    /// to an L2 broadcast or multicast address, or is ARP or neighbour discovery; frames that are
    /// neither IP nor ARP are dropped; a pod may not send router advertisements or redirects.
    func testForgedFramesOfEveryClassAreDropped() throws {
        let fixture = try fixture()
        func verdict(_ packet: [UInt8]) throws -> Int32 { try fixture.run(fixture.podProgram, packet).verdict }
        let forged4: [UInt8] = [10, 50, 0, 99], forged6 = IPAddress("fd00:50::99")!.bytes
        let broadcast: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], multicast4: [UInt8] = [0x01, 0x00, 0x5e, 0, 0, 1]
        let multicast6: [UInt8] = [0x33, 0x33, 0, 0, 0, 1]
        let linkLocalA = IPAddress("fe80::a")!.bytes, unspecified6 = IPAddress("::")!.bytes
        let allNodes = IPAddress("ff02::1")!.bytes, solicitedB = IPAddress("ff02::1:ff00:3")!.bytes
        let (hopByHop, routing, fragment, destination): (UInt8, UInt8, UInt8, UInt8) = (0, 43, 44, 60)
        let udp = [UInt8](repeating: 0xab, count: 16)

        // IPv4: another address than the pod's, in each class the stack would take.
        for (why, packet) in [
            ("options", Packets.ipv4(from: podA, to: hostA, forged4, b4, options: 1)),
            ("first fragment", Packets.ipv4(from: podA, to: hostA, forged4, b4, fragmentField: 0x2000)),
            ("later fragment", Packets.ipv4(from: podA, to: hostA, forged4, b4, fragmentField: 0x0010)),
            ("L2 broadcast", Packets.ipv4(from: podA, to: broadcast, forged4, b4)),
            ("L2 multicast", Packets.ipv4(from: podA, to: multicast4, forged4, [224, 0, 0, 1])),
            ("TTL expiring", Packets.ipv4(from: podA, to: hostA, forged4, b4, ttl: 1)),
            ("for the node", Packets.ipv4(from: podA, to: hostA, forged4, [10, 200, 0, 1])),
            ("another pod's, options", Packets.ipv4(from: podA, to: hostA, b4, a4, options: 2)),
        ] {
            XCTAssertEqual(try verdict(packet), TC_ACT_SHOT, "IPv4 forged source: \(why)")
        }
        XCTAssertEqual(try verdict(Packets.ipv4(from: podB, to: hostA, a4, b4, options: 1)), TC_ACT_SHOT, "IPv4 options, forged MAC")

        // IPv6: each extension header, neighbour discovery, other next headers, L2 broadcast and multicast.
        for (why, packet) in [
            ("hop-by-hop", Packets.ipv6(from: podA, to: hostA, forged6, b6, extensions: [hopByHop], upper: 17, payload: udp)),
            ("routing", Packets.ipv6(from: podA, to: hostA, forged6, b6, extensions: [routing], upper: 17, payload: udp)),
            ("fragment", Packets.ipv6(from: podA, to: hostA, forged6, b6, extensions: [fragment], upper: 17, payload: udp,
                                      fragmentField: 1)),
            ("destination options", Packets.ipv6(from: podA, to: hostA, forged6, b6, extensions: [destination], upper: 17, payload: udp)),
            ("neighbour advertisement", Packets.ipv6(from: podA, to: hostA, forged6, allNodes, hopLimit: 255, nextHeader: 58,
                                                     payload: Packets.icmp6(136))),
            ("neighbour solicitation", Packets.ipv6(from: podA, to: hostA, b6, solicitedB, hopLimit: 255, nextHeader: 58,
                                                    payload: Packets.icmp6(135))),
            ("SCTP", Packets.ipv6(from: podA, to: hostA, forged6, b6, nextHeader: 132)),
            ("L2 broadcast", Packets.ipv6(from: podA, to: broadcast, forged6, b6)),
            ("L2 multicast", Packets.ipv6(from: podA, to: multicast6, forged6, allNodes)),
            ("link-local source off the link", Packets.ipv6(from: podA, to: hostA, linkLocalA, b6)),
            ("unspecified source to a unicast address", Packets.ipv6(from: podA, to: hostA, unspecified6, b6)),
        ] {
            XCTAssertEqual(try verdict(packet), TC_ACT_SHOT, "IPv6 forged source: \(why)")
        }
        XCTAssertEqual(try verdict(Packets.ipv6(from: podB, to: multicast6, linkLocalA, allNodes, hopLimit: 255, nextHeader: 58,
                                                payload: Packets.icmp6(135))), TC_ACT_SHOT, "link-local source, another pod's MAC")

        // ARP: only the pod's own address, from its own MAC.
        for (why, packet) in [
            ("another pod's address", Packets.arp(from: podA, op: 2, senderIP: b4, targetIP: [10, 50, 0, 1])),
            ("no address (a probe)", Packets.arp(from: podA, senderIP: [0, 0, 0, 0], targetIP: b4)),
            ("another sender MAC", Packets.arp(from: podA, op: 2, senderMAC: podB, senderIP: a4, targetIP: [10, 50, 0, 1])),
            ("another frame MAC", Packets.arp(from: podB, senderMAC: podA, senderIP: a4, targetIP: [10, 50, 0, 1])),
        ] {
            XCTAssertEqual(try verdict(packet), TC_ACT_SHOT, "ARP: \(why)")
        }
        var truncatedARP = Packets.arp(from: podA, senderIP: a4, targetIP: b4)
        truncatedARP[18] = 8   // a hardware address length no Ethernet has
        XCTAssertEqual(try verdict(truncatedARP), TC_ACT_SHOT, "ARP of another kind")

        // Neither IP nor ARP: LLDP, a VLAN tag around the pod's own IPv4, RARP.
        let ownIPv4 = Array(Packets.ipv4(from: podA, to: hostA, a4, b4).dropFirst(14))
        for (why, type, payload) in [("LLDP", UInt16(0x88cc), udp), ("VLAN", 0x8100, [0, 5, 0x08, 0] + ownIPv4), ("RARP", 0x8035, udp)] {
            XCTAssertEqual(try verdict(Packets.ethernet(from: podA, to: hostA, type: type, payload: payload)), TC_ACT_SHOT, why)
        }

        // No router's messages: router advertisements and redirects, behind extension headers too.
        for (why, packet) in [
            ("router advertisement", Packets.ipv6(from: podA, to: multicast6, linkLocalA, allNodes, hopLimit: 255, nextHeader: 58,
                                                  payload: Packets.icmp6(134))),
            ("router advertisement behind destination options", Packets.ipv6(from: podA, to: multicast6, linkLocalA, allNodes,
                                                                             hopLimit: 255, extensions: [destination], upper: 58,
                                                                             payload: Packets.icmp6(134))),
            ("redirect", Packets.ipv6(from: podA, to: hostA, a6, IPAddress("fd00:50::1")!.bytes, hopLimit: 255, nextHeader: 58,
                                      payload: Packets.icmp6(137))),
            ("redirect behind hop-by-hop and a first fragment", Packets.ipv6(from: podA, to: hostA, a6, b6, hopLimit: 255,
                                                                             extensions: [hopByHop, fragment], upper: 58,
                                                                             payload: Packets.icmp6(137), fragmentField: 1)),
            ("ICMP redirect", Packets.ipv4(from: podA, to: hostA, a4, b4, proto: 1, payload: [5, 1] + udp)),
            ("ICMP router advertisement", Packets.ipv4(from: podA, to: broadcast, a4, [255, 255, 255, 255], proto: 1, payload: [9, 0] + udp)),
        ] {
            XCTAssertEqual(try verdict(packet), TC_ACT_SHOT, why)
        }
        XCTAssertEqual(try verdict(Packets.ipv6(from: podA, to: hostA, a6, b6, extensions: [UInt8](repeating: destination, count: 5),
                                                upper: 17, payload: udp)), TC_ACT_SHOT, "more extension headers than the datapath reads")

        // What the pod may send, each to the stack: its own ARP, neighbour discovery from its
        // link-local or unspecified address on the link, its own packets behind four extension headers.
        for (why, packet) in [
            ("its own ARP answer", Packets.arp(from: podA, to: hostA, op: 2, senderIP: a4, targetIP: [10, 50, 0, 1])),
            ("solicitation from its link-local address", Packets.ipv6(from: podA, to: multicast6, linkLocalA, solicitedB, hopLimit: 255,
                                                                      nextHeader: 58, payload: Packets.icmp6(135))),
            ("duplicate address detection", Packets.ipv6(from: podA, to: multicast6, unspecified6, solicitedB, hopLimit: 255,
                                                         nextHeader: 58, payload: Packets.icmp6(135))),
            ("router solicitation", Packets.ipv6(from: podA, to: multicast6, linkLocalA, IPAddress("ff02::2")!.bytes, hopLimit: 255,
                                                 nextHeader: 58, payload: Packets.icmp6(133))),
            ("four extension headers", Packets.ipv6(from: podA, to: hostA, a6, b6, extensions: [hopByHop, routing, destination, destination],
                                                    upper: 17, payload: udp)),
            ("a later fragment", Packets.ipv6(from: podA, to: hostA, a6, b6, extensions: [fragment], upper: 58,
                                              payload: Packets.icmp6(137), fragmentField: 0x0010)),
            ("an ICMP echo with options", Packets.ipv4(from: podA, to: hostA, a4, b4, proto: 1, options: 1, payload: [8, 0] + udp)),
        ] {
            XCTAssertEqual(try verdict(packet), TC_ACT_OK, why)
        }

        let counted = try fixture.counted()
        let expected: [PacketPath: UInt64] = [
            .dropSpoofedSource: 8 + 11 + 2, .dropSpoofedMAC: 1 + 1 + 2, .dropMalformed: 1, .dropNotIP: 3, .dropRouterMessage: 6,
            .dropExtensionChain: 1, .stackNotIP: 1, .stackICMPv6ND: 3, .stackIPv6Extension: 2, .stackIPOptions: 1,
        ]
        XCTAssertEqual(counted, expected)
        XCTAssertNil(counted[.redirectPeer], "nothing was delivered")
    }

    /// loadBalancerSourceRanges: a ranged frontend opens connections for its ranges' clients only,
    /// per family; a change takes effect for the next connection, one already open keeps going; a
    /// range of the whole family is no restriction; a write cut off before the refusal of the rest
    /// reads back as open, and the next write finishes it; the ranges survive in the store's
    /// record and go with the service.
    func testSourceRangesAdmitOnlyTheirClients() throws {
        let fixture = try fixture()
        let (datapath, uplink, run) = (fixture.datapath, fixture.uplinkProgram, fixture.run)
        let lb4 = IPAddress("10.200.0.40")!, lb6 = IPAddress("fd00:200::40")!
        let inside: [UInt8] = [10, 200, 0, 2], outside: [UInt8] = [10, 200, 0, 9]
        let client6 = IPAddress("fd00:200::2")!.bytes
        let web = Service(address: lb4, port: 80, proto: .tcp), web6 = Service(address: lb6, port: 80, proto: .tcp)
        let open = Service(address: lb4, port: 8080, proto: .tcp)
        var port: UInt16 = 42000
        func connect(_ source: [UInt8], _ service: Service) throws -> Int32 {
            port += 1
            return try run(uplink, Packets.transport(from: neighbour, to: hostA, source, service.address.bytes, proto: 6, sport: port,
                                                     dport: service.port, flags: 0x02)).verdict
        }
        let ranges = [IPPrefix("10.200.0.0/30")!, IPPrefix("192.0.2.0/24")!]
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster, sourceRanges: ranges)
        try datapath.services.setService(web6, backends: [Backend(address: IPAddress(bytes: a6)!, port: 8080)], external: .cluster, sourceRanges: [])
        try datapath.services.setService(open, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster)

        XCTAssertEqual(try connect(inside, web), TC_ACT_REDIRECT, "inside 10.200.0.0/30")
        XCTAssertEqual(try connect(outside, web), TC_ACT_SHOT, "outside every range")
        XCTAssertEqual(try connect(outside, open), TC_ACT_REDIRECT, "another port of the address, with no ranges")
        XCTAssertEqual(try connect(client6, web6), TC_ACT_SHOT, "no range of its family: nobody")
        XCTAssertEqual(try fixture.counted()[.dropSourceRange], 2)
        XCTAssertEqual(try datapath.store.serviceRecord(web)?.sourceRanges, ranges)
        XCTAssertEqual(try datapath.services.programs().first { $0.service == web }?.sourceRanges, ranges)
        XCTAssertEqual(try datapath.services.programs().first { $0.service == web6 }?.sourceRanges, [])
        XCTAssertNil(try datapath.services.programs().first { $0.service == open }?.sourceRanges)

        // A connection opened before a change keeps going; the next one follows the new ranges.
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster,
                                sourceRanges: [IPPrefix("10.200.0.8/29")!])
        XCTAssertEqual(try run(uplink, Packets.transport(from: neighbour, to: hostA, inside, lb4.bytes, proto: 6, sport: 42001, dport: 80,
                                                         flags: 0x10, seq: 2, ack: 1)).verdict, TC_ACT_REDIRECT, "its connection stays")
        XCTAssertEqual(try connect(inside, web), TC_ACT_SHOT)
        XCTAssertEqual(try connect(outside, web), TC_ACT_REDIRECT)
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster)
        XCTAssertEqual(try connect(inside, web), TC_ACT_REDIRECT, "no ranges: every client")
        XCTAssertNil(try datapath.store.serviceRecord(web)?.sourceRanges)

        // More ranges than a record chunk holds, then fewer: the record reads back each set.
        let many = [IPPrefix("10.200.0.0/30")!] + (0..<40).map { IPPrefix(address: IPAddress(bytes: [10, 201, UInt8($0), 0])!, length: 24)! }
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster, sourceRanges: many)
        XCTAssertEqual(try datapath.store.serviceRecord(web)?.sourceRanges, many)
        XCTAssertEqual(try connect(inside, web), TC_ACT_REDIRECT)
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster,
                                sourceRanges: Array(many.suffix(3)))
        XCTAssertEqual(try datapath.store.serviceRecord(web)?.sourceRanges, Array(many.suffix(3)))
        XCTAssertEqual(try datapath.services.programs().first { $0.service == web }?.sourceRanges?.count, 3)
        XCTAssertEqual(try connect(inside, web), TC_ACT_SHOT)

        // The whole family is every client: no entry at all, read back as no ranges.
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster,
                                sourceRanges: [IPPrefix("192.0.2.0/24")!, IPPrefix("0.0.0.0/0")!])
        XCTAssertEqual(try connect(outside, web), TC_ACT_REDIRECT)
        XCTAssertNil(try datapath.services.programs().first { $0.service == web }?.sourceRanges)
        XCTAssertEqual(try fixture.node.mapEntries("datapath/sp_source_ranges"), 1, "only web6's refusal of every client")

        // A write cut off before the refusal of the rest: open, and read back as open, so that
        // the agent writes it again; the next write restricts it.
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster, sourceRanges: ranges)
        var refusal = [UInt8](repeating: 0, count: 40)
        refusal[0] = 160
        refusal.replaceSubrange(4..<8, with: lb4.bytes)
        refusal.replaceSubrange(20..<24, with: [0, 80, 6, 4])
        _ = try shell(["bpftool", "map", "delete", "pinned", fixture.node.storeRoot + "/datapath/sp_source_ranges", "key", "hex"]
                      + refusal.map { String(format: "%02x", $0) })
        XCTAssertEqual(try connect(outside, web), TC_ACT_REDIRECT)
        XCTAssertNil(try datapath.services.programs().first { $0.service == web }?.sourceRanges)
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster, sourceRanges: ranges)
        XCTAssertEqual(try connect(outside, web), TC_ACT_SHOT)
        XCTAssertEqual(try datapath.services.programs().first { $0.service == web }?.sourceRanges, ranges)

        // Deleted with the service: set again without ranges, it admits everyone.
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster, sourceRanges: ranges)
        try datapath.services.deleteService(web)
        try datapath.services.deleteService(web6)
        XCTAssertNil(try datapath.store.serviceRecord(web))
        try datapath.services.setService(web, backends: [Backend(address: IPAddress(bytes: a4)!, port: 8080)], external: .cluster)
        try datapath.services.setService(web6, backends: [Backend(address: IPAddress(bytes: a6)!, port: 8080)], external: .cluster)
        XCTAssertEqual(try connect(outside, web), TC_ACT_REDIRECT)
        XCTAssertEqual(try connect(client6, web6), TC_ACT_REDIRECT)

        // By hand: ranges of the service's family, for outside clients only, listed as set.
        let cli = { (arguments: [String]) in try runProcess([pluginBinary, "service"] + arguments + ["--root", fixture.node.storeRoot]) }
        XCTAssertEqual(try cli(["set", "10.200.0.40:443/tcp", "10.50.0.2:8443", "--external", "--source-range", "198.51.100.0/24"]).status, 0)
        XCTAssertTrue(try cli(["list"]).stdout.contains("(sources: 198.51.100.0/24)"))
        let listed = try JSONSerialization.jsonObject(with: Data(cli(["list", "-o", "json"]).stdout.utf8)) as? [[String: Any]] ?? []
        XCTAssertEqual(listed.first { $0["service"] as? String == "10.200.0.40:443/tcp" }?["sourceRanges"] as? [String], ["198.51.100.0/24"])
        let wrongFamily = try cli(["set", "10.200.0.40:443/tcp", "--external", "--source-range", "2001:db8::/32"])
        XCTAssertNotEqual(wrongFamily.status, 0)
        XCTAssertTrue(wrongFamily.stderr.contains("not of 10.200.0.40:443/tcp's address family"), wrongFamily.stderr)
        XCTAssertNotEqual(try cli(["set", "10.200.0.40:443/tcp", "--source-range", "198.51.100.0/24"]).status, 0, "not external")
        XCTAssertEqual(try datapath.services.programs().first { $0.service.port == 443 }?.sourceRanges, [IPPrefix("198.51.100.0/24")!],
                       "a refused change changes nothing")
    }

    /// Connections from outside to services answered at the uplink, on crafted packets: the first
    /// packet opens a connection to a backend (a local pod, or a host off the node through the
    /// node's address and a port of its own), its replies are translated back, checksums stay
    /// right; malformed, spoofed and stray packets open nothing.
    func testNodePortsOnCraftedPackets() throws {
        let fixture = try fixture()
        let (datapath, pod, uplink) = (fixture.datapath, fixture.podProgram, fixture.uplinkProgram)
        let run = fixture.run
        let node4: [UInt8] = [10, 200, 0, 1], client4: [UInt8] = [10, 200, 0, 2], remote4: [UInt8] = [10, 200, 0, 5]
        let node6 = IPAddress("fd00:200::1")!.bytes, client6 = IPAddress("fd00:200::2")!.bytes
        let tcp: UInt8 = 6, udp: UInt8 = 17, syn: UInt8 = 0x02, ack: UInt8 = 0x10
        func service(_ address: [UInt8], _ port: UInt16, _ proto: Service.TransportProtocol) -> Service {
            Service(address: IPAddress(bytes: address)!, port: port, proto: proto)
        }
        func backend(_ address: [UInt8], _ port: UInt16) -> Backend { Backend(address: IPAddress(bytes: address)!, port: port) }
        try datapath.services.setService(service(node4, 30080, .tcp), backends: [backend(a4, 8080)], external: .cluster)
        try datapath.services.setService(service(node4, 30053, .udp), backends: [backend(a4, 53)], external: .cluster)
        try datapath.services.setService(service(node6, 30080, .tcp), backends: [backend(a6, 8080)], external: .cluster)
        try datapath.services.setService(service(node4, 30090, .tcp), backends: [backend(remote4, 9090)], external: .cluster)
        try datapath.services.setService(service(node4, 30100, .tcp), backends: [backend(remote4, 9090)], external: .local([]))
        try datapath.services.setService(service(node4, 30110, .tcp), backends: [], external: .cluster)
        try datapath.services.setService(service(node4, 30120, .tcp), backends: [backend(a4, 8080)])   // not answered from outside
        func fromOutside(_ src: [UInt8], _ dst: [UInt8], _ proto: UInt8, _ sport: UInt16, _ dport: UInt16, flags: UInt8 = 0x02,
                         udpChecksum: Bool = true, seq: UInt32 = 1, ack: UInt32 = 0) -> [UInt8] {
            Packets.transport(from: neighbour, to: hostA, src, dst, proto: proto, sport: sport, dport: dport, flags: flags, udpChecksum: udpChecksum,
                              seq: seq, ack: ack)
        }

        // To a local pod: destination rewritten, the client kept, into the pod.
        var result = try run(uplink, fromOutside(client4, node4, tcp, 40000, 30080))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(Array(result.packet[0..<6]), podA, "into pod A")
        XCTAssertEqual(Packets.transport(of: result.packet),
                       .init(src: client4, dst: a4, sport: 40000, dport: 8080, checksumsRight: true,
                             rawChecksum: Packets.transport(of: result.packet).rawChecksum))
        XCTAssertEqual(result.packet[22], 63, "TTL decremented")
        XCTAssertEqual(try datapath.connections.translated().map(\.unconfirmed), [true], "the SYN opens an unconfirmed connection")
        // The pod's reply leaves as the node port's.
        result = try run(pod, Packets.transport(from: podA, to: hostA, a4, client4, proto: tcp, sport: 8080, dport: 40000, flags: syn | ack,
                                                seq: 1000, ack: 2))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(Array(result.packet[0..<6]), neighbour, "out to the client")
        var seen = Packets.transport(of: result.packet)
        XCTAssertEqual([seen.src, seen.dst], [node4, client4])
        XCTAssertEqual([seen.sport, seen.dport], [30080, 40000])
        XCTAssertTrue(seen.checksumsRight)
        // Later packets of the connection take the same backend; an ACK of another sequence than
        // the SYN-ACK's confirms nothing, the client's ACK of it confirms the connection.
        result = try run(uplink, fromOutside(client4, node4, tcp, 40000, 30080, flags: ack, seq: 2, ack: 500_000))
        XCTAssertEqual(Packets.transport(of: result.packet).dst, a4)
        XCTAssertEqual(try datapath.connections.translated().map(\.unconfirmed), [true])
        result = try run(uplink, fromOutside(client4, node4, tcp, 40000, 30080, flags: ack, seq: 2, ack: 1001))
        XCTAssertEqual(Packets.transport(of: result.packet).dst, a4)
        XCTAssertEqual(try datapath.connections.translated().map(\.unconfirmed), [false], "confirmed by the handshake's last ACK")

        // IPv6, and UDP with and without a checksum.
        result = try run(uplink, fromOutside(client6, node6, tcp, 40000, 30080))
        seen = Packets.transport(of: result.packet)
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        XCTAssertEqual([seen.src, seen.dst], [client6, a6])
        XCTAssertTrue(seen.checksumsRight)
        result = try run(uplink, fromOutside(client4, node4, udp, 40001, 30053))
        seen = Packets.transport(of: result.packet)
        XCTAssertEqual([seen.dst], [a4])
        XCTAssertEqual(seen.dport, 53)
        XCTAssertTrue(seen.checksumsRight)
        XCTAssertNotEqual(seen.rawChecksum, 0)
        result = try run(uplink, fromOutside(client4, node4, udp, 40002, 30053, udpChecksum: false))
        XCTAssertEqual(Packets.transport(of: result.packet).rawChecksum, 0, "no checksum stays none")

        // Off the node: from the node's own address and a port of its range, and back.
        result = try run(uplink, fromOutside(client4, node4, tcp, 40003, 30090))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        seen = Packets.transport(of: result.packet)
        XCTAssertEqual([seen.src, seen.dst], [node4, remote4])
        XCTAssertEqual(seen.dport, 9090)
        XCTAssertTrue((1024...32767).contains(seen.sport), "\(seen.sport)")
        XCTAssertTrue(seen.checksumsRight)
        let nodePort = seen.sport
        result = try run(uplink, fromOutside(remote4, node4, tcp, 9090, nodePort, flags: syn | ack))
        XCTAssertEqual(result.verdict, TC_ACT_REDIRECT)
        seen = Packets.transport(of: result.packet)
        XCTAssertEqual([seen.src, seen.dst], [node4, client4])
        XCTAssertEqual([seen.sport, seen.dport], [30090, 40003])
        XCTAssertTrue(seen.checksumsRight)

        let connections = try datapath.connections.translated()
        XCTAssertEqual(connections.count, 5, "\(connections)")
        XCTAssertEqual(connections.first { $0.service == "10.200.0.1:30090" }?.nodeSource, "10.200.0.1:\(nodePort)")

        // What opens nothing: a TCP packet of no connection, a SYN with FIN, martian and local
        // sources, a bad IPv4 checksum, a transport header cut short, a service not answered from
        // outside, one without local endpoints (dropped) or without any (the node refuses it).
        XCTAssertEqual(try run(uplink, fromOutside(client4, node4, tcp, 41000, 30080, flags: ack)).verdict, TC_ACT_OK)
        XCTAssertEqual(try run(uplink, fromOutside(client4, node4, tcp, 41001, 30080, flags: syn | 0x01)).verdict, TC_ACT_OK)
        try datapath.node.setOwnAddresses([IPAddress(bytes: node4)!])
        for source in [[127, 0, 0, 1], [224, 0, 0, 1], a4, node4] as [[UInt8]] {
            XCTAssertEqual(try run(uplink, fromOutside(source, node4, tcp, 41002, 30080)).verdict, TC_ACT_SHOT, "source \(source)")
        }
        var corrupt = fromOutside(client4, node4, tcp, 41003, 30080)
        corrupt[24] ^= 0xff
        XCTAssertEqual(try run(uplink, corrupt).verdict, TC_ACT_UNSPEC, "the stack drops it")
        var cut = fromOutside(client4, node4, tcp, 41004, 30080)
        cut = Array(cut.prefix(34 + 10))
        cut[16] = 0
        cut[17] = 30
        cut[24] = 0
        cut[25] = 0
        let sum = Packets.checksum(Array(cut[14..<34]))
        cut[24] = UInt8(sum >> 8)
        cut[25] = UInt8(sum & 0xff)
        XCTAssertEqual(try run(uplink, cut).verdict, TC_ACT_UNSPEC, "a TCP header cut short")
        XCTAssertEqual(try run(uplink, fromOutside(client4, node4, tcp, 41005, 30120)).verdict, TC_ACT_UNSPEC, "not external")
        XCTAssertEqual(try run(uplink, fromOutside(client4, node4, tcp, 41006, 30100)).verdict, TC_ACT_SHOT, "Local, no endpoint here")
        XCTAssertEqual(try run(uplink, fromOutside(client4, node4, tcp, 41007, 30110)).verdict, TC_ACT_OK, "no endpoint at all")
        XCTAssertEqual(try datapath.connections.translated().count, 5, "nothing opened")

        let counted = try fixture.counted()
        XCTAssertEqual(counted[.natToBackend], 7)
        XCTAssertEqual(counted[.natConfirmed], 1)
        XCTAssertEqual(counted[.natReply], 2)
        XCTAssertEqual(counted[.stackNoFlow], 2)
        XCTAssertEqual(counted[.dropMartianSource], 4)
        XCTAssertEqual(counted[.dropNoLocalBackend], 1)
        XCTAssertEqual(counted[.stackNoBackend], 1)

        // A departed backend's connections go; idle ones expire; nothing is left.
        XCTAssertEqual(try datapath.connections.forget([(service(node4, 30090, .tcp), backend(remote4, 9090))]), 1)
        XCTAssertEqual(try run(uplink, fromOutside(client4, node4, tcp, 40003, 30090, flags: ack)).verdict, TC_ACT_OK,
                       "its client's next packet finds no connection: the node resets it")
        var timeouts = ConnectionTimeouts()
        timeouts.unconfirmedSeconds = 0
        usleep(1_100_000)
        XCTAssertEqual(try datapath.connections.expire(timeouts).expired, 3, "the IPv6 SYN's and the UDP flows: unconfirmed")
        timeouts.tcpSeconds = 0
        XCTAssertEqual(try datapath.connections.expire(timeouts).expired, 1, "the confirmed one")
        XCTAssertTrue(try datapath.connections.translated().isEmpty)
        XCTAssertEqual(try datapath.connections.tableEntries(), 0, "no half of a connection left")

        // A reset near its sender's sequence ends a connection at once, both ways; one far from it
        // (a blind forgery) is passed on and changes nothing.
        _ = try run(uplink, fromOutside(client4, node4, tcp, 42000, 30080))
        XCTAssertEqual(try datapath.connections.tableEntries(), 2)
        for forged: UInt32 in [0x8000_0000, 1 &- 0x4_0001, 1 + 0x2_0000] {
            result = try run(uplink, fromOutside(client4, node4, tcp, 42000, 30080, flags: 0x04, seq: forged))
            XCTAssertEqual(Packets.transport(of: result.packet).dst, a4, "passed on all the same")
            XCTAssertEqual(try datapath.connections.tableEntries(), 2, "a reset at \(forged) is no reset of this connection")
        }
        XCTAssertEqual(try fixture.counted()[.natResetIgnored], 3)
        result = try run(uplink, fromOutside(client4, node4, tcp, 42000, 30080, flags: 0x04))
        XCTAssertEqual(Packets.transport(of: result.packet).dst, a4, "the reset itself reaches the backend")
        XCTAssertEqual(try datapath.connections.tableEntries(), 0)
        // A client port reused straight to the pod while its node port connection still closes:
        // the pod's replies are its own again.
        _ = try run(uplink, fromOutside(client4, node4, tcp, 42001, 30080))
        XCTAssertEqual(try run(uplink, fromOutside(client4, a4, tcp, 42001, 8080)).verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(try datapath.connections.tableEntries(), 0)
        result = try run(pod, Packets.transport(from: podA, to: hostA, a4, client4, proto: tcp, sport: 8080, dport: 42001, flags: syn | ack))
        XCTAssertEqual(Packets.transport(of: result.packet).src, a4, "not taken for the node port's")

        // An attacker who knows a confirmed connection's tuple but not its sequence: a FIN far from
        // the mark is not believed, so a SYN then restarts nothing and a reset at the SYN's
        // sequence is far from the mark; a SYN straight to the pod leaves the live connection be.
        _ = try run(uplink, fromOutside(client4, node4, tcp, 42002, 30080))
        _ = try run(pod, Packets.transport(from: podA, to: hostA, a4, client4, proto: tcp, sport: 8080, dport: 42002, flags: syn | ack,
                                           seq: 5000, ack: 2))
        _ = try run(uplink, fromOutside(client4, node4, tcp, 42002, 30080, flags: ack, seq: 2, ack: 5001))
        XCTAssertEqual(try datapath.connections.translated().map(\.unconfirmed), [false])
        let blind: UInt32 = 0x9000_0000
        for flags: UInt8 in [0x01 | ack, syn, 0x04] {
            result = try run(uplink, fromOutside(client4, node4, tcp, 42002, 30080, flags: flags, seq: blind, ack: 5001))
            XCTAssertEqual(Packets.transport(of: result.packet).dst, a4, "passed on to the backend, which judges it itself")
        }
        XCTAssertEqual(try run(uplink, fromOutside(client4, a4, tcp, 42002, 8080, seq: blind)).verdict, TC_ACT_REDIRECT)
        XCTAssertEqual(try datapath.connections.tableEntries(), 2, "the connection stands")
        XCTAssertEqual(try datapath.connections.translated().map(\.closing), [false])
        result = try run(pod, Packets.transport(from: podA, to: hostA, a4, client4, proto: tcp, sport: 8080, dport: 42002, flags: ack,
                                                seq: 5001, ack: 2))
        XCTAssertEqual(Packets.transport(of: result.packet).src, node4, "its replies still leave as the node port's")
    }
}
