// SPDX-License-Identifier: Apache-2.0
import Foundation
import NetAddress
import XCTest

/// A pod with a raw socket plays the attacker on a real node: it forges its source in the packet
/// classes the datapath hands to the stack (IPv4 options, fragments, IPv6 extension headers), and
/// sends ARP, neighbour discovery, router advertisements and other ethertypes. Its neighbour on
/// the node watches its own interface: a forged packet must never arrive, while the same packet
/// from the attacker's own address does (so the path is open, and a leak would show).
final class ForgedSourceTests: XCTestCase {
    private struct Attack {
        let node: TestNode
        let attacker: String, victim: String
        let attackerMAC: [UInt8], gatewayMAC: [UInt8]
        let own4: [UInt8], own6: [UInt8], victim4: [UInt8], victim6: [UInt8]
        /// Unleased addresses of the pods' own ranges: no pod's, nobody's.
        let forged4: [UInt8] = [10, 123, 0, 250]
        let forged6 = IPAddress("fd00:123::fa")!.bytes
        static let marker = Array("SPFORGED".utf8)

        /// Sends `frames` from the attacker's eth0 while the victim watches its own; returns the
        /// tags of those that arrived.
        func arrivals(of frames: [[UInt8]]) throws -> Set<String> {
            let watcher = try startServer(in: victim, "rawframes.py", ["watch", "eth0", "3", "SPFORGED"])
            let hex = frames.map { $0.map { String(format: "%02x", $0) }.joined() }
            let sent = try runProcess(["nsenter", "--net=\(attacker)", "python3", testScript("rawframes.py"), "send", "eth0"] + hex)
            XCTAssertEqual(sent.status, 0, sent.stderr)
            watcher.waitUntilExit()
            let output = (watcher.standardOutput as? Pipe)?.fileHandleForReading.readDataToEndOfFile() ?? Data()
            return Set(String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init))
        }

        /// UDP to port 9 carrying the marker and `tag`.
        func udp(_ tag: String) -> [UInt8] {
            let body = Self.marker + Array(tag.utf8) + [UInt8](repeating: 0x2e, count: 14)
            let length = 8 + body.count
            return [0x0f, 0xa0, 0, 9, UInt8(length >> 8), UInt8(length & 0xff), 0, 0] + body
        }
    }

    private func attack() throws -> Attack {
        let node = try TestNode(self)
        let attacker = try node.makePod("mallory"), victim = try node.makePod("victim")
        let own = try node.add("ctr-mallory", pod: attacker).podAddresses
        let theirs = try node.add("ctr-victim", pod: victim).podAddresses
        XCTAssertEqual(own.count, 2)
        XCTAssertEqual(theirs.count, 2)
        let link = try node.inPod(attacker, "ip", "-o", "link", "show", "eth0").stdout.split(separator: " ").map(String.init)
        let neighbour = try node.inPod(attacker, "ip", "-4", "neigh", "show", "dev", "eth0").stdout.split(separator: " ").map(String.init)
        let attackerMAC = try XCTUnwrap(link.drop { $0 != "link/ether" }.dropFirst().first)
        let gatewayMAC = try XCTUnwrap(neighbour.drop { $0 != "lladdr" }.dropFirst().first)
        func bytes(_ address: String) throws -> [UInt8] { try XCTUnwrap(IPAddress(address)).bytes }
        return Attack(node: node, attacker: attacker, victim: victim,
                      attackerMAC: try XCTUnwrap(MACAddress(attackerMAC)).bytes, gatewayMAC: try XCTUnwrap(MACAddress(gatewayMAC)).bytes,
                      own4: try bytes(own[0]), own6: try bytes(own[1]), victim4: try bytes(theirs[0]), victim6: try bytes(theirs[1]))
    }

    /// Forged sources in what goes to the stack never reach another pod; the same packets from
    /// the pod's own addresses do (the control: lower-case tags are forged, upper-case ones not).
    func testForgedSourcesNeverReachAnotherPod() throws {
        let attack = try attack()
        let (mac, gateway) = (attack.attackerMAC, attack.gatewayMAC)
        var frames: [[UInt8]] = []
        for (source4, source6, forged) in [(attack.forged4, attack.forged6, true), (attack.own4, attack.own6, false)] {
            func tag(_ name: String) -> String { forged ? name : name.uppercased() }
            frames.append(Packets.ipv4(from: mac, to: gateway, source4, attack.victim4, options: 1, payload: attack.udp(tag("o4"))))
            frames.append(Packets.ipv4(from: mac, to: gateway, source4, attack.victim4, fragmentField: 0x2000,
                                       payload: attack.udp(tag("f4"))))
            frames.append(Packets.ipv6(from: mac, to: gateway, source6, attack.victim6, extensions: [0], upper: 17,
                                       payload: attack.udp(tag("h6"))))
            frames.append(Packets.ipv6(from: mac, to: gateway, source6, attack.victim6, extensions: [60], upper: 17,
                                       payload: attack.udp(tag("d6"))))
        }
        let arrived = try attack.arrivals(of: frames)
        XCTAssertEqual(Set(arrived.filter { $0 == $0.uppercased() }), ["O4", "F4", "H6", "D6"],
                       "the pod's own packets of each class reach its neighbour through the stack")
        XCTAssertEqual(Set(arrived.filter { $0 != $0.uppercased() }), [], "no forged packet reaches another pod")
        XCTAssertGreaterThanOrEqual(try attack.node.stats().packets(role: "endpoint", path: "drop_spoofed_source"), 4)
    }

    /// ARP claiming another pod's address, neighbour advertisements from a forged address, router
    /// advertisements and other ethertypes are dropped on the host end, counted by reason; the
    /// host end itself neither takes router advertisements or redirects nor accepts a source its
    /// routes do not lead back to.
    func testPodIsNoRouterAndOwnsNoOtherAddress() throws {
        let attack = try attack()
        let (mac, gateway) = (attack.attackerMAC, attack.gatewayMAC)
        let broadcast: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff], allNodesMAC: [UInt8] = [0x33, 0x33, 0, 0, 0, 1]
        let allNodes = IPAddress("ff02::1")!.bytes, linkLocal = IPAddress("fe80::1:2")!.bytes
        let before = try attack.node.stats()
        try attack.arrivals(of: [
            Packets.arp(from: mac, to: broadcast, op: 2, senderIP: attack.victim4, targetIP: attack.victim4),
            Packets.ipv6(from: mac, to: allNodesMAC, attack.victim6, allNodes, hopLimit: 255, nextHeader: 58, payload: Packets.icmp6(136)),
            Packets.ipv6(from: mac, to: allNodesMAC, linkLocal, allNodes, hopLimit: 255, nextHeader: 58, payload: Packets.icmp6(134)),
            Packets.ethernet(from: mac, to: gateway, type: 0x88cc, payload: attack.udp("l2")),
            // Its own packet inside an 802.1Q tag: the receive path takes the tag off before the
            // program runs, which must still not carry the pod's frame onto a VLAN.
            Packets.ethernet(from: mac, to: gateway, type: 0x8100, payload: [0, 7, 0x08, 0x00]
                             + Array(Packets.ipv4(from: mac, to: gateway, attack.own4, attack.victim4, payload: attack.udp("v4")).dropFirst(14))),
        ]).forEach { XCTFail("\($0) reached another pod") }
        let after = try attack.node.stats()
        func grew(_ path: String) -> Int { after.packets(role: "endpoint", path: path) - before.packets(role: "endpoint", path: path) }
        XCTAssertGreaterThanOrEqual(grew("drop_spoofed_source"), 2, "ARP and neighbour advertisement for another pod's address")
        XCTAssertGreaterThanOrEqual(grew("drop_router_message"), 1, "router advertisement")
        XCTAssertGreaterThanOrEqual(grew("drop_not_ip"), 2, "LLDP, and the VLAN-tagged frame")

        let hostEnd = try XCTUnwrap(attack.node.hostVeths().first)
        for (key, value) in [("net.ipv4.conf.\(hostEnd).rp_filter", "1"), ("net.ipv4.conf.\(hostEnd).accept_redirects", "0"),
                             ("net.ipv6.conf.\(hostEnd).accept_ra", "0"), ("net.ipv6.conf.\(hostEnd).accept_redirects", "0")] {
            XCTAssertEqual(try attack.node.exec("sysctl", "-n", key).trimmingCharacters(in: .whitespacesAndNewlines), value, key)
        }
    }
}
