// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// Two simulated nodes joined by a veth "wire", each with its own netns, store and pod ranges,
/// routing the other's pod ranges over the wire: the smallest cluster that has "across nodes".
final class TwoNodes {
    let one: TestNode
    let two: TestNode
    static let wire = (one: "wire1", two: "wire2")
    static let wireAddresses = (one: ("10.0.0.1", "fd00:ff::1"), two: ("10.0.0.2", "fd00:ff::2"))

    init(_ testCase: XCTestCase) throws {
        one = try TestNode(testCase)
        two = try TestNode(testCase)
        one.podRanges = ("10.31.1.0/24", "fd00:31:1::/64")
        two.podRanges = ("10.31.2.0/24", "fd00:31:2::/64")
        one.devices = [Self.wire.one]
        two.devices = [Self.wire.two]
        try shell("ip", "-n", one.netns, "link", "add", Self.wire.one, "type", "veth", "peer", "name", Self.wire.two,
                  "netns", two.netns)
        for (node, device, (v4, v6), peer, peerRanges) in [
            (one, Self.wire.one, Self.wireAddresses.one, Self.wireAddresses.two, two.podRanges),
            (two, Self.wire.two, Self.wireAddresses.two, Self.wireAddresses.one, one.podRanges),
        ] {
            try node.exec("ip", "addr", "add", "\(v4)/24", "dev", device)
            try node.exec("ip", "addr", "add", "\(v6)/64", "dev", device, "nodad")
            try node.exec("ip", "link", "set", device, "up")
            try node.exec("ip", "route", "add", peerRanges.v4, "via", peer.0)
            try node.exec("ip", "-6", "route", "add", peerRanges.v6, "via", peer.1)
        }
    }

    /// Drops everything at the netfilter forward hook of both nodes: only traffic that never
    /// takes the host stack's forwarding path can still get through.
    func dropForwarding() throws {
        for node in [one, two] {
            try node.exec("nft", "add", "table", "inet", "\(node.prefix)fw")
            try node.exec("nft", "add chain inet \(node.prefix)fw forward { type filter hook forward priority 0 ; policy drop ; }")
        }
    }
}

/// One TCP or UDP exchange between two netns, through Tests/IntegrationTests/echo.py.
func exchange(_ proto: String, from client: String, to server: String, address: String, port: Int = 7777,
              askingForPeer: Bool = false) throws -> String {
    let serving = try startServer(in: server, "echo.py", ["serve", proto, String(port)] + (askingForPeer ? ["peer"] : []))
    defer {
        if serving.isRunning { serving.terminate() }
        serving.waitUntilExit()
    }
    let answer = try runProcess(["nsenter", "--net=\(client)", "python3", testScript("echo.py"), "ask", proto, address, String(port)])
    return answer.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}
