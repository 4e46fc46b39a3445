// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// hostPort: the runtime passes a pod's `portMappings` (the agent's conflist declares the
/// capability), and the plugin offers each `hostIP:hostPort` on the node, to clients outside the
/// cluster through the uplinks, to the node itself and to pods through the socket hooks.
extension AgentClusterTests {
    private static let mappings: [[String: Any]] = [
        ["hostPort": 8081, "containerPort": 8080, "protocol": "tcp"],
        ["hostPort": 8053, "containerPort": 8080, "protocol": "UDP"],
    ]

    /// Node 1's services that are host ports, "address:port/proto" to their backends.
    private func hostPorts(_ i: Int) throws -> [String: [String]] {
        try listedServices(i).filter { $0.value["hostPortOf"] != nil }.mapValues { $0["backends"] as? [String] ?? [] }
    }

    func testHostPortsFromOutsideFromTheNodeAndFromPods() throws {
        for i in 1...2 { try startAgent(i) }
        try waitFor("nodes 1 and 2 ready") { (1...2).allSatisfy(ready) }
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: conflist(1)))) as? [String: Any])
        let capabilities = (list["plugins"] as? [[String: Any]])?.first?["capabilities"] as? [String: Any]
        XCTAssertEqual(capabilities?["portMappings"] as? Bool, true, "the conflist declares the portMappings capability")

        let node1 = internalIPs(1)
        let mappings = Self.mappings + [["hostPort": 9090, "containerPort": 8080, "protocol": "tcp", "hostIP": node1[0]]]
        let podPath = try nodes[0].makePod("hp")
        let add = try cni(1, "ADD", pod: "hp", netns: podPath, ["runtimeConfig": ["portMappings": mappings]])
        XCTAssertEqual(add.status, 0, add.stdout + add.stderr)
        let added = try add.json()
        let ips = (added["ips"] as? [[String: Any]] ?? []).compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
        let pod: Pod = (podPath, try XCTUnwrap(ips.first { !$0.contains(":") }), try XCTUnwrap(ips.first { $0.contains(":") }))
        let server = try startServer(in: pod.path, "lbserver.py", ["8080", "hp"])
        addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }

        // Every node address of both families (and localhost), TCP and UDP; the named host IP only.
        let offered = try hostPorts(1)
        for address in ["127.0.0.1", "[::1]", node1[0], "[\(node1[1])]"] {
            XCTAssertEqual(offered["\(address):8081/tcp"], ["\(address.hasPrefix("[") ? "[\(pod.v6)]" : pod.v4):8080"], address)
            XCTAssertNotNil(offered["\(address):8053/udp"], address)
        }
        XCTAssertEqual(offered["\(node1[0]):9090/tcp"], ["\(pod.v4):8080"])
        XCTAssertNil(offered["[\(node1[1])]:9090/tcp"], "a host IP names one address")

        // From outside: the pod sees the client's own address.
        let client = internalIPs(3)
        for (family, address) in node1.enumerated() {
            for (proto, port) in [("tcp", 8081), ("udp", 8053)] {
                XCTAssertEqual(try seenFromOutside(proto, address, port, count: 8), ["errors": 0, "hp \(client[family])": 8],
                               "\(proto) \(address):\(port) from outside")
            }
        }
        XCTAssertEqual(try seenFromOutside("tcp", node1[0], 9090, count: 4), ["errors": 0, "hp \(client[0])": 4])
        // From node 1 itself (localhost and its addresses) and from a pod on node 2.
        let other = try addPod(2, "client")
        for (i, netns, address) in [(1, "/run/netns/\(nodes[0].netns)", "127.0.0.1"), (1, "/run/netns/\(nodes[0].netns)", node1[1]),
                                    (2, other.path, node1[0]), (2, other.path, node1[1])] {
            for (proto, port) in [("tcp", "8081"), ("udp", "8053")] {
                XCTAssertEqual(try ask(node: i, in: netns, "peer", proto, address, port)["answer"] as? String, "hp",
                               "\(proto) \(address):\(port) from node \(i)")
            }
        }

        // A second pod asking for a taken host port is refused, leaving nothing behind.
        let veths = try nodes[0].hostVeths()
        let refused = try cni(1, "ADD", pod: "hp2", netns: try nodes[0].makePod("hp2"), ["runtimeConfig": ["portMappings": [Self.mappings[0]]]])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.errorCode, 109, refused.stdout)
        XCTAssertTrue(refused.stdout.contains("\(node1[0]):8081/tcp"), refused.stdout)
        XCTAssertEqual(try nodes[0].hostVeths(), veths)
        XCTAssertEqual(try hostPorts(1), offered)
        // So is one asking for a Service's node port, which the agent keeps programming around the
        // host ports, restarted or not.
        try putNodePortService("np", tcp: 30080, udp: 30053, policy: "Cluster", externalIPs: [], members: [(pod, "node-1")])
        try waitFor("the node port programmed") { try listedServices(1)["\(node1[0]):30080/tcp"] != nil }
        let clash = try cni(1, "ADD", pod: "hp2", netns: "/run/netns/\(nodes[0].prefix)-hp2",
                            ["runtimeConfig": ["portMappings": [["hostPort": 30080, "containerPort": 80]]]])
        XCTAssertEqual(clash.errorCode, 109, clash.stdout)
        XCTAssertTrue(clash.stdout.contains("a service"), clash.stdout)
        stop(agents[1]!)
        try startAgent(1)
        try waitFor("node 1 ready again") { ready(1) }
        usleep(4_500_000)  // two resyncs
        XCTAssertEqual(try hostPorts(1), offered)
        XCTAssertEqual(try seenFromOutside("tcp", node1[0], 8081, count: 4), ["errors": 0, "hp \(client[0])": 4])

        // CHECK finds them, and finds one missing.
        let check = { () throws -> CNIOutcome in
            try self.cni(1, "CHECK", pod: "hp", netns: pod.path, ["runtimeConfig": ["portMappings": mappings], "prevResult": added])
        }
        let clean = try check()
        XCTAssertEqual(clean.status, 0, clean.stdout)
        _ = try runProcess([pluginBinary, "service", "delete", "--root", nodes[0].storeRoot, "\(node1[0]):9090/tcp"])
        let drifted = try check()
        XCTAssertEqual(drifted.errorCode, 105, drifted.stdout)
        XCTAssertTrue(drifted.stdout.contains("9090/tcp is not offered"), drifted.stdout)

        // DEL takes them away; connections to them fail from then on.
        let deleted = try cni(1, "DEL", pod: "hp", netns: pod.path, ["runtimeConfig": ["portMappings": mappings]])
        XCTAssertEqual(deleted.status, 0, deleted.stdout)
        XCTAssertEqual(try hostPorts(1), [:])
        XCTAssertEqual(try seenFromOutside("tcp", node1[0], 8081, count: 2)["errors"] as Int?, 2)

        // GC takes away those of an attachment the runtime no longer lists.
        _ = try addPod(1, "hp3", runtimeConfig: ["portMappings": [Self.mappings[0]]])
        XCTAssertEqual(Set(try hostPorts(1).keys), Set(offered.keys.filter { $0.hasSuffix(":8081/tcp") }))
        let gc = try cni(1, "GC", pod: "", ["cniVersion": "1.1.0", "cni.dev/valid-attachments": [[String: String]]()])
        XCTAssertEqual(gc.status, 0, gc.stdout)
        XCTAssertEqual(try hostPorts(1), [:])
    }

    /// What the upstream conformance test asks ("no conflict between pods with same hostPort but
    /// different hostIP and protocol"): three pods share host port 54323, one on 127.0.0.1, two on
    /// the node's address apart by protocol; the node itself reaches each.
    func testHostPortsApartByAddressAndProtocol() throws {
        try startAgent(1)
        try waitFor("node 1 ready") { ready(1) }
        let node1 = internalIPs(1)[0]
        let asks: [(name: String, hostIP: String, proto: String)] = [("p1", "127.0.0.1", "tcp"), ("p2", node1, "tcp"), ("p3", node1, "udp")]
        for ask in asks {
            let pod = try addPod(1, ask.name, runtimeConfig: ["portMappings": [["hostPort": 54323, "containerPort": 8080,
                                                                                 "protocol": ask.proto, "hostIP": ask.hostIP]]])
            let server = try startServer(in: pod.path, "lbserver.py", ["8080", ask.name])
            addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        }
        XCTAssertEqual(Set(try hostPorts(1).keys), ["127.0.0.1:54323/tcp", "\(node1):54323/tcp", "\(node1):54323/udp"])
        for ask in asks {
            let answer = try self.ask(node: 1, in: "/run/netns/\(nodes[0].netns)", "peer", ask.proto, ask.hostIP, "54323")
            XCTAssertEqual(answer["answer"] as? String, ask.name, "\(ask.proto) \(ask.hostIP):54323")
        }
    }
}
