// SPDX-License-Identifier: Apache-2.0
import Foundation
import KubernetesAPI
import NetAddress
import Netlink
import Netns
import NodeAgent
import SystemCallSupport
import XCTest

/// The netlink layer against the kernel: refusals carry the kernel's own words, and a socket
/// that saw one answers its next requests correctly; routes of one protocol; listening sockets.
final class NetlinkTests: XCTestCase {
    func testRefusalsCarryTheKernelsMessageAndTheSocketStaysUsable() throws {
        let node = try TestNode(self)
        try node.exec("ip", "link", "add", "nl0", "type", "veth", "peer", "name", "nl1")
        try node.exec("ip", "link", "set", "nl0", "up")
        let index = try node.ifindex(of: "nl0")
        let namespace = try NetworkNamespace.open("/run/netns/\(node.netns)")
        let netlink = try namespace.run { () throws(SystemCallError) in try NetlinkSocket() }.get()

        // A gateway that is on no connected network: the kernel refuses and says why.
        let route = Route(destination: IPPrefix("10.77.0.0/16")!, gateway: IPAddress("192.0.2.77")!, outputIndex: index)
        XCTAssertThrowsError(try netlink.addRoute(route)) { error in
            let error = error as? SystemCallError
            XCTAssertEqual(error?.errno, .networkUnreachable, "\(String(describing: error))")
            XCTAssertNotNil(error?.kernelMessage, "the extended ack's message: \(String(describing: error))")
        }
        // The same socket goes on answering: a dump, then a lookup.
        XCTAssertTrue(try netlink.defaultRoutes(family: .v4).isEmpty)
        XCTAssertEqual(try netlink.link(index: index)?.name, "nl0")
    }

    /// Where off-node traffic goes, from one lookup per family: nowhere, a default route's device,
    /// or "unclear" wherever one lookup cannot stand for a read of the table.
    func testOffNodeRouteIsOneLookupAndSaysWhenItCannotTell() throws {
        let node = try TestNode(self)
        for (device, address) in [("up0", "10.68.0.1/24"), ("up1", "10.69.0.1/24")] {
            try node.exec("ip", "link", "add", device, "type", "veth", "peer", "name", device + "p")
            try node.exec("ip", "addr", "add", address, "dev", device)
            try node.exec("ip", "link", "set", device, "up")
        }
        let netlink = try node.netlink()
        XCTAssertEqual(try netlink.offNodeRoute(family: .v4), .unreachable)
        XCTAssertEqual(try netlink.offNodeRoute(family: .v6), .unreachable)
        XCTAssertEqual(try netlink.offNodeLinks(), [])

        // Two default routes, the second a backup: the lookup names the one in use.
        try node.exec("ip", "route", "add", "default", "via", "10.68.0.9", "metric", "10")
        try node.exec("ip", "route", "add", "default", "via", "10.69.0.9", "metric", "20")
        guard case .default(let route) = try netlink.offNodeRoute(family: .v4) else { return XCTFail("a default route") }
        XCTAssertEqual(route.outputIndex, try node.ifindex(of: "up0"))
        XCTAssertEqual(try netlink.offNodeLinks()?.map(\.name), ["up0"])
        XCTAssertEqual(try netlink.defaultRouteLinks().map(\.name), ["up0", "up1"], "the table holds both")

        // A route more specific than the default over the probe, and a default with two next hops:
        // one lookup cannot tell, and says so.
        try node.exec("ip", "route", "add", "198.18.0.0/15", "via", "10.69.0.9")
        XCTAssertEqual(try netlink.offNodeRoute(family: .v4), .unclear)
        XCTAssertNil(try netlink.offNodeLinks())
        try node.exec("ip", "route", "del", "198.18.0.0/15")
        try node.exec("ip", "route", "del", "default", "metric", "20")
        try node.exec("ip", "route", "replace", "default", "metric", "10", "nexthop", "via", "10.68.0.9", "nexthop", "via", "10.69.0.9")
        XCTAssertEqual(try netlink.offNodeRoute(family: .v4), .unclear)
    }

    /// A routing daemon's routes: added with its protocol number, listed by it, replaced and
    /// deleted without touching the routes of others.
    func testRoutesOfOneProtocolAreListedReplacedAndDeletedAlone() throws {
        let node = try TestNode(self)
        try node.exec("ip", "link", "add", "rt0", "type", "veth", "peer", "name", "rt1")
        try node.exec("ip", "addr", "add", "10.66.0.1/24", "dev", "rt0")
        try node.exec("ip", "link", "set", "rt0", "up")
        try node.exec("ip", "route", "add", "10.67.0.0/24", "via", "10.66.0.9")   // an administrator's
        let namespace = try NetworkNamespace.open("/run/netns/\(node.netns)")
        let netlink = try namespace.run { () throws(SystemCallError) in try NetlinkSocket() }.get()
        let ours = RouteProtocol(rawValue: 157)
        try netlink.replaceRoute(Route(destination: IPPrefix("10.68.0.0/24")!, gateway: IPAddress("10.66.0.2")!, outputIndex: nil, proto: ours))
        try netlink.replaceRoute(Route(destination: IPPrefix("10.68.0.0/24")!, gateway: IPAddress("10.66.0.3")!, outputIndex: nil, proto: ours))
        let listed = try netlink.routes(family: .v4, madeBy: ours)
        XCTAssertEqual(listed.map { "\($0.destination) via \($0.gateway!)" }, ["10.68.0.0/24 via 10.66.0.3"], "replaced, not added twice")
        try netlink.deleteRoute(listed[0])
        try netlink.deleteRoute(listed[0])   // already gone: no error
        XCTAssertTrue(try netlink.routes(family: .v4, madeBy: ours).isEmpty)
        XCTAssertTrue(try node.exec("ip", "route", "show", "10.67.0.0/24").contains("via 10.66.0.9"), "the administrator's route stays")
    }

    /// sock_diag names the ports listened on, IPv4 and IPv6, in its own netns only; a connected
    /// socket's port is no listener.
    func testListeningTCPPortsOfTheNamespace() throws {
        let node = try TestNode(self)
        try node.exec("ip", "link", "set", "lo", "up")
        let listeners = Process()
        listeners.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        listeners.arguments = ["--net=/run/netns/\(node.netns)", "python3", "-c", """
            import socket, sys
            v4 = socket.socket(socket.AF_INET); v4.bind(("127.0.0.1", 10257)); v4.listen()
            v6 = socket.socket(socket.AF_INET6); v6.bind(("::1", 10256)); v6.listen()
            client = socket.create_connection(("127.0.0.1", 10257))
            print(client.getsockname()[1], flush=True)
            sys.stdin.read()
            """]
        let output = Pipe(), input = Pipe()
        listeners.standardOutput = output
        listeners.standardInput = input
        try listeners.run()
        defer { try? input.fileHandleForWriting.close(); listeners.waitUntilExit() }
        let clientPort = UInt16(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines))

        let namespace = try NetworkNamespace.open("/run/netns/\(node.netns)")
        let ports = try namespace.run { () throws(SystemCallError) in try NetlinkSocket(.socketDiagnostics).listeningTCPPorts() }.get()
        XCTAssertEqual(ports, [10256, 10257], "the node's listeners, and nothing else")
        XCTAssertNotNil(clientPort)
        XCTAssertFalse(ports.contains(clientPort ?? 0))
    }
}

/// The agent's routes to other nodes' pods, on a real routing table: a destination another route
/// holds (the operator's, a routing daemon's) is left to it, never replaced.
final class NodeRoutesTests: XCTestCase {
    func testARouteSwiftpathDidNotMakeIsNeverReplaced() throws {
        let node = try TestNode(self)
        try node.exec("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        try node.exec("ip", "link", "set", "up0", "up")
        try node.exec("ip", "addr", "add", "10.0.0.1/24", "dev", "up0")
        try node.exec("ip", "route", "add", "10.1.2.0/24", "via", "10.0.0.254", "proto", "static")
        let nodes = [
            Node(metadata: ObjectMeta(name: "b"), spec: .init(podCIDRs: ["10.1.2.0/24"]),
                 status: .init(addresses: [.init(type: "InternalIP", address: "10.0.0.2")])),
            Node(metadata: ObjectMeta(name: "c"), spec: .init(podCIDRs: ["10.1.3.0/24"]),
                 status: .init(addresses: [.init(type: "InternalIP", address: "10.0.0.3")])),
        ]
        let outcome = try node.inNodeNetns { () throws(SystemCallError) in
            try NodeRoutes.reconcile(NodeRoutes.desired(nodes: nodes, ownName: "a"), netlink: try NetlinkSocket())
        }
        XCTAssertEqual(outcome.foreign.map(\.description), ["10.1.2.0/24"])
        XCTAssertEqual(outcome.added, 1)
        XCTAssertTrue(try node.exec("ip", "route", "show", "10.1.2.0/24").hasPrefix("10.1.2.0/24 via 10.0.0.254 dev up0 proto static"),
                      "the operator's route stands")
        XCTAssertTrue(try node.exec("ip", "route", "show", "10.1.3.0/24").contains("via 10.0.0.3"))
    }

    /// A node whose address is on none of this node's links (another L2 segment) gets no route,
    /// and says so; the nodes sorted after it still get theirs.
    func testANodeOffTheLinkCostsTheOthersNothing() throws {
        let node = try TestNode(self)
        try node.exec("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
        try node.exec("ip", "link", "set", "up0", "up")
        try node.exec("ip", "addr", "add", "10.0.0.1/24", "dev", "up0")
        let nodes = [("b", "10.1.2.0/24", "192.0.2.7"), ("c", "10.1.3.0/24", "10.0.0.3"), ("d", "10.1.4.0/24", "10.0.0.4")].map {
            Node(metadata: ObjectMeta(name: $0.0), spec: .init(podCIDRs: [$0.1]), status: .init(addresses: [.init(type: "InternalIP", address: $0.2)]))
        }
        let outcome = try node.inNodeNetns { () throws(SystemCallError) in
            try NodeRoutes.reconcile(NodeRoutes.desired(nodes: nodes, ownName: "a"), netlink: try NetlinkSocket())
        }
        XCTAssertEqual(outcome.failed.map(\.route.destination.description), ["10.1.2.0/24"])
        XCTAssertEqual(outcome.added, 2)
        XCTAssertEqual(outcome.owned, 2)
        XCTAssertTrue(try node.exec("ip", "route", "show", "10.1.4.0/24").contains("via 10.0.0.4"))
        XCTAssertEqual(try node.exec("ip", "route", "show", "10.1.2.0/24"), "")
    }
}
