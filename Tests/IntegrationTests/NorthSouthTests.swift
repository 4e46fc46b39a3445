// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// Clients outside the cluster: node 3 runs no agent and stands for a machine on the nodes' wire.
/// Its connections to node ports and external IPs of nodes 1 and 2 are translated at their uplinks
/// in BPF, to backends on the same node (which see the client) and on the other node (which see
/// the node), and back.
extension AgentClusterTests {
    /// Node 3, as a client outside the cluster: its own netns, no agent, no socket hooks.
    var outside: String { "/run/netns/\(nodes[2].netns)" }

    /// The connections node `i`'s uplinks hold, as `service connections -o json` lists them.
    func translatedConnections(_ i: Int) throws -> [[String: Any]] {
        let listed = try runProcess([pluginBinary, "service", "connections", "--root", nodes[i - 1].storeRoot, "-o", "json"])
        return try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
    }

    /// Node `i`'s services as `service list -o json` lists them, by "address:port/proto".
    func listedServices(_ i: Int) throws -> [String: [String: Any]] {
        let listed = try runProcess([pluginBinary, "service", "list", "--root", nodes[i - 1].storeRoot, "-o", "json"])
        let views = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: views.map { ($0["service"] as? String ?? "", $0) })
    }

    /// A datapath counter of node `i`'s uplink, by path name.
    func uplinkPackets(_ i: Int, _ path: String) throws -> Double {
        let metrics = try runProcess(["nsenter", "--net=/run/netns/\(nodes[i - 1].netns)", "curl", "-s", "http://127.0.0.1:9876/metrics"]).stdout
        return metrics.split(separator: "\n").filter { $0.hasPrefix("swiftpath_datapath_packets_total{") && $0.contains("path=\"\(path)\"") }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    /// Puts Service `name`: a NodePort (TCP 80 -> node port `tcp`, UDP 53 -> node port `udp`) on
    /// both families, with an external IP of each family, its slices listing `members` on 8080.
    func putNodePortService(_ name: String, tcp: Int, udp: Int, policy: String, externalIPs: [String],
                            members: [(pod: Pod, node: String)]) throws {
        let ports: [[String: Any]] = [["name": "http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": tcp],
                                      ["name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns", "nodePort": udp]]
        try standIn.putService("default", name, clusterIPs: ["10.96.1.\(tcp % 100)", "fd00:96::1:\(tcp % 100)"],
                               ports: [("http", "TCP", 80), ("dns", "UDP", 53)],
                               spec: ["type": "NodePort", "externalTrafficPolicy": policy, "ports": ports, "externalIPs": externalIPs])
        for (family, addressType) in [(\Pod.v4, "IPv4"), (\Pod.v6, "IPv6")] {
            try standIn.putEndpointSlice("default", "\(name)-\(addressType.lowercased())", service: name, addressType: addressType,
                                         ports: [("http", "TCP", 8080), ("dns", "UDP", 8080)],
                                         endpoints: members.map { .init($0.pod[keyPath: family], node: $0.node) })
        }
    }

    /// What the outside client sees of `count` connections to ADDRESS:PORT: "backend address-it-saw" to count.
    func seenFromOutside(_ proto: String, _ address: String, _ port: Int, count: Int = 24) throws -> [String: Int] {
        let result = try runProcess(["nsenter", "--net=\(outside)", "python3", testScript("lbclient.py"), "seen", proto, address, "\(port)", "\(count)"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Int] ?? [:]
    }

    /// externalTrafficPolicy Cluster: a node port on either node, both families, TCP and UDP,
    /// reaches the backends of both nodes; the local one sees the client's address, the remote one
    /// the node's; an external IP routed to a node is answered on the Service port. Idle
    /// connections leave the table; a backend that leaves takes its connections with it.
    func testNodePortsFromOutsideTheCluster() throws {
        // Masquerading on: the replies of backends to the node that translated them must not be.
        for i in 1...2 { try startAgent(i, ["--masquerade", "--tcp-closing-timeout", "1", "--udp-timeout", "2"]) }
        try waitFor("nodes 1 and 2 ready") { (1...2).allSatisfy(ready) }
        let web = try webBackends()
        let externalIPs = ["192.0.2.10", "2001:db8::10"]
        try putNodePortService("np", tcp: 30080, udp: 30053, policy: "Cluster", externalIPs: externalIPs,
                               members: [(web[0], "node-1"), (web[1], "node-2")])
        // The client's router sends the external IPs to node 1.
        try nodes[2].exec("ip", "route", "add", "192.0.2.10/32", "via", internalIPs(1)[0])
        try nodes[2].exec("ip", "-6", "route", "add", "2001:db8::10/128", "via", internalIPs(1)[1])
        let client = internalIPs(3)
        try waitFor("the node ports programmed for outside clients") {
            try (1...2).allSatisfy { try listedServices($0)["\(internalIPs($0)[0]):30080/tcp"]?["external"] as? String == "cluster" }
        }

        for i in 1...2 {
            let other = 3 - i
            for (family, address) in internalIPs(i).enumerated() {
                for (proto, port) in [("tcp", 30080), ("udp", 30053)] {
                    let seen = try seenFromOutside(proto, address, port)
                    XCTAssertEqual(seen["errors"], 0, "\(proto) to node \(i) \(address): \(seen)")
                    XCTAssertGreaterThan(seen["web\(i) \(client[family])"] ?? 0, 0, "the local backend sees the client: \(proto) \(address) \(seen)")
                    XCTAssertGreaterThan(seen["web\(other) \(internalIPs(i)[family])"] ?? 0, 0,
                                         "the other node's backend sees node \(i): \(proto) \(address) \(seen)")
                    XCTAssertEqual(seen.count, 3, "nothing else: \(seen)")
                }
            }
        }
        for address in externalIPs {
            for (proto, port) in [("tcp", 80), ("udp", 53)] {
                let seen = try seenFromOutside(proto, address, port, count: 16)
                XCTAssertEqual(seen["errors"], 0, "\(proto) to external IP \(address): \(seen)")
                XCTAssertEqual(seen.keys.filter { $0.hasPrefix("web") }.count, 2, "both backends through node 1: \(seen)")
            }
        }
        XCTAssertGreaterThan(try uplinkPackets(1, "nat_to_backend"), 0)
        XCTAssertGreaterThan(try uplinkPackets(1, "nat_reply"), 0)
        XCTAssertEqual(try uplinkPackets(1, "drop_no_snat_port"), 0)

        // Many at once: 64 connections held open together, spread over both backends.
        let holder = try Holder(node: nodes[2], netns: outside, "\(internalIPs(1)[0]) 30080 30053 64")
        let held = try holder.nextLine()
        let heldBackends = held["tcp"] as? [String] ?? []
        XCTAssertEqual(heldBackends.count, 64, "\(held)")
        XCTAssertEqual(Set(heldBackends), ["web1", "web2"], "\(held)")
        XCTAssertGreaterThanOrEqual(try translatedConnections(1).filter { $0["closing"] as? Bool == false }.count, 64)

        // web2 leaves: its connections go from the table, the client's next packet on each is
        // answered with a reset; web1's carry on; new connections reach web1 only.
        try standIn.putEndpointSlice("default", "np-ipv4", service: "np", addressType: "IPv4", ports: [("http", "TCP", 8080), ("dns", "UDP", 8080)],
                                     endpoints: [.init(web[0].v4, node: "node-1")])
        try waitFor("web2's connections forgotten on node 1") {
            try translatedConnections(1).allSatisfy { ($0["backend"] as? String)?.hasPrefix(web[1].v4) != true }
        }
        let after = try holder.release()
        let afterTCP = after["tcp"] as? [String] ?? []
        for (before, now) in zip(heldBackends, afterTCP) {
            XCTAssertEqual(now, before == "web1" ? "web1" : "ECONNRESET", "\(after)")
        }
        XCTAssertEqual((after["again"] as? [String: String])?["tcp"], "web1", "\(after)")
        XCTAssertEqual((after["again"] as? [String: String])?["udp"], "web1", "\(after)")

        // Idle connections expire: TCP once closed both ways (1 s here), UDP after 2 s.
        try waitFor("the table empty once every connection closed or idled", seconds: 30) {
            try (1...2).allSatisfy { try translatedConnections($0).isEmpty }
        }
        XCTAssertGreaterThan(try agentMetric(1, "swiftpath_agent_connections_expired_total"), 0)
    }

    /// externalTrafficPolicy Local: each node sends outside clients to its own backends only, which
    /// see the client's address; a node without one drops them (its health check node port says
    /// 503, so a load balancer does not send them there).
    func testExternalTrafficPolicyLocalKeepsTheClient() throws {
        for i in 1...2 { try startAgent(i) }
        try waitFor("nodes 1 and 2 ready") { (1...2).allSatisfy(ready) }
        let web = try webBackends()
        try putNodePortService("local", tcp: 30081, udp: 30054, policy: "Local", externalIPs: [],
                               members: [(web[0], "node-1"), (web[1], "node-2")])
        let client = internalIPs(3)
        try waitFor("the node ports programmed") {
            try (1...2).allSatisfy { try programmedServices($0)["\(internalIPs($0)[0]):30081/tcp"] != nil }
        }
        for i in 1...2 {
            for (family, address) in internalIPs(i).enumerated() {
                for (proto, port) in [("tcp", 30081), ("udp", 30054)] {
                    let seen = try seenFromOutside(proto, address, port, count: 12)
                    XCTAssertEqual(seen, ["errors": 0, "web\(i) \(client[family])": 12], "\(proto) to node \(i) \(address)")
                }
            }
        }
        // From inside the cluster the node port still reaches every endpoint (kube-proxy's rule).
        let spread = try ask(node: 1, in: "/run/netns/\(nodes[0].netns)", "spread", internalIPs(1)[0], "30081", "20")
        XCTAssertGreaterThan(spread["web2"] as? Int ?? 0, 0, "\(spread)")

        // Only web1 left: node 2 has no local endpoint and drops what outside clients send it.
        for (family, addressType) in [(\Pod.v4, "IPv4"), (\Pod.v6, "IPv6")] {
            try standIn.putEndpointSlice("default", "local-\(addressType.lowercased())", service: "local", addressType: addressType,
                                         ports: [("http", "TCP", 8080), ("dns", "UDP", 8080)], endpoints: [.init(web[0][keyPath: family], node: "node-1")])
        }
        try waitFor("node 2 without a local endpoint") {
            try (listedServices(2)["\(internalIPs(2)[0]):30081/tcp"]?["localBackends"] as? [String])?.isEmpty == true
        }
        let before = try uplinkPackets(2, "drop_no_local_backend")
        let refused = try runProcess(["nsenter", "--net=\(outside)", "python3", testScript("lbclient.py"), "errno", internalIPs(2)[0], "30081"])
        XCTAssertEqual(refused.stdout.trimmingCharacters(in: .whitespacesAndNewlines), #"{"errno": "timeout"}"#)
        XCTAssertGreaterThan(try uplinkPackets(2, "drop_no_local_backend"), before)
        XCTAssertEqual(try seenFromOutside("tcp", internalIPs(1)[0], 30081, count: 6), ["errors": 0, "web1 \(client[0])": 6])
    }
}
