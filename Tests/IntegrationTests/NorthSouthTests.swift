// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
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
    func translatedConnections(_ i: Int) throws -> [ListedConnection] {
        let listed = try runProcess([pluginBinary, "service", "connections", "--root", nodes[i - 1].storeRoot, "-o", "json"])
        return try JSONDecoder().decode([ListedConnection].self, from: Data(listed.stdout.utf8))
    }

    /// Node `i`'s services as `service list -o json` lists them, by "address:port/proto".
    func listedServices(_ i: Int) throws -> [String: ListedService] {
        try ListedService.byKey(try runProcess([pluginBinary, "service", "list", "--root", nodes[i - 1].storeRoot, "-o", "json"]).stdout)
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
        for i in 1...2 {
            try startAgent(i, ["--masquerade", "--tcp-closing-timeout", "1", "--udp-timeout", "2", "--external-ip-cidrs", "192.0.2.0/24,2001:db8::/32",
                              "--metrics-interval", "1"])
        }
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
            try (1...2).allSatisfy { try listedServices($0)["\(internalIPs($0)[0]):30080/tcp"]?.external == "cluster" }
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
        // /metrics shows the counters as the last snapshot read them.
        try waitFor("the translations counted") { try uplinkPackets(1, "nat_to_backend") > 0 && uplinkPackets(1, "nat_reply") > 0 }
        XCTAssertEqual(try uplinkPackets(1, "drop_no_snat_port"), 0)

        // Many at once: 64 connections held open together, spread over both backends.
        let holder = try Holder(node: nodes[2], netns: outside, "\(internalIPs(1)[0]) 30080 30053 64")
        let held = try holder.nextLine()
        let heldBackends = held["tcp"] as? [String] ?? []
        XCTAssertEqual(heldBackends.count, 64, "\(held)")
        XCTAssertEqual(Set(heldBackends), ["web1", "web2"], "\(held)")
        XCTAssertGreaterThanOrEqual(try translatedConnections(1).filter { !$0.closing }.count, 64)

        // web2 leaves: its connections go from the table, the client's next packet on each is
        // answered with a reset; web1's carry on; new connections reach web1 only.
        try standIn.putEndpointSlice("default", "np-ipv4", service: "np", addressType: "IPv4", ports: [("http", "TCP", 8080), ("dns", "UDP", 8080)],
                                     endpoints: [.init(web[0].v4, node: "node-1")])
        try waitFor("web2's connections forgotten on node 1") {
            try translatedConnections(1).allSatisfy { !$0.backend.hasPrefix(web[1].v4) }
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

    /// A host on the nodes' link floods a node port with SYNs from forged sources, then sends
    /// blind resets with each held connection's addresses and ports (but not its sequence): the
    /// flood fills only the unconfirmed table, the resets are passed on without ending anything,
    /// and every held connection still reaches its backend.
    func testHeldConnectionsSurviveASynFloodAndForgedResets() throws {
        for i in 1...2 { try startAgent(i, ["--metrics-interval", "1"]) }
        try waitFor("nodes 1 and 2 ready") { (1...2).allSatisfy(ready) }
        let web = try webBackends()
        try putNodePortService("held", tcp: 30082, udp: 30055, policy: "Cluster", externalIPs: [],
                               members: [(web[0], "node-1"), (web[1], "node-2")])
        let address = internalIPs(1)[0]
        try waitFor("the node port programmed") { try listedServices(1)["\(address):30082/tcp"]?.external == "cluster" }
        let holder = try Holder(node: nodes[2], netns: outside, "\(address) 30082 30055 32")
        let held = try holder.nextLine()["tcp"] as? [String] ?? []
        XCTAssertEqual(held.count, 32)
        let confirmed = try translatedConnections(1).filter { $0.service == "\(address):30082" && !$0.unconfirmed }
        XCTAssertEqual(confirmed.count, 32, "each handshake confirmed its connection")

        let flood = try runProcess(["nsenter", "--net=\(outside)", "python3", testScript("flood.py"), "syn", address, "30082", "150000",
                                    "198.18.0.0/15"])
        XCTAssertEqual(flood.status, 0, flood.stderr)
        let figures = try JSONSerialization.jsonObject(with: Data(flood.stdout.utf8)) as? [String: Any] ?? [:]
        let listed = try translatedConnections(1)
        let unconfirmed = listed.filter(\.unconfirmed).count
        print("SYN flood: \(figures); node 1's table after it: \(listed.count - unconfirmed) confirmed, \(unconfirmed) unconfirmed")
        XCTAssertGreaterThan(unconfirmed, 1000, "the flood reached the table")
        try waitFor("the agent's figures show the flood") {
            try agentMetric(1, "swiftpath_connection_table_entries{table=\"unconfirmed\"}") > 2000
                && agentMetric(1, "swiftpath_connection_table_capacity{table=\"unconfirmed\"}") > 0
        }
        XCTAssertGreaterThanOrEqual(try agentMetric(1, "swiftpath_connection_table_entries{table=\"confirmed\"}"), 64)

        // Resets as far from each connection's sequence as can be, taken from the table itself.
        let resets = try confirmedSequenceMarks(node: 1, servicePort: 30082, client: internalIPs(3)[0]).flatMap { client, mark in
            (0..<16).map { "\(client):\(mark &+ 0x4000_0000 &+ UInt32($0) << 25)" }
        }
        XCTAssertEqual(resets.count, 32 * 16)
        let sent = try runProcess(["nsenter", "--net=\(outside)", "python3", testScript("flood.py"), "rst", address, "30082"] + resets)
        XCTAssertEqual(sent.status, 0, sent.stderr)
        try waitFor("every reset passed over, as the agent's figures count them") {
            try uplinkPackets(1, "nat_reset_ignored") >= Double(resets.count)
        }

        let after = try holder.release()
        XCTAssertEqual(after["tcp"] as? [String], held, "every held connection still reaches its backend: \(after)")
    }

    /// The sequence marks of node `i`'s confirmed entries of `client`'s connections to `servicePort`,
    /// by "client:port", read from the pinned table with bpftool (struct sp_nat: `to` is 40 bytes,
    /// then last_seen_ns, flags, seq_mark, in host order).
    func confirmedSequenceMarks(node i: Int, servicePort: UInt16, client: String) throws -> [(String, UInt32)] {
        let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", "\(nodes[i - 1].storeRoot)/datapath/sp_nat"])
        let entries = try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [[String: Any]] ?? []
        func bytes(_ field: Any?) -> [UInt8] { (field as? [String] ?? []).compactMap { UInt8($0.dropFirst(2), radix: 16) } }
        return entries.compactMap { entry in
            let key = bytes(entry["key"]), value = bytes(entry["value"])
            guard key.count == 40, value.count == 56, key[37] == 4, UInt16(key[34]) << 8 | UInt16(key[35]) == servicePort,
                  "\(key[0]).\(key[1]).\(key[2]).\(key[3])" == client,
                  value.withUnsafeBytes({ $0.loadUnaligned(fromByteOffset: 48, as: UInt32.self) }) & (SP_NAT_REPLY_DIRECTION | SP_NAT_UNCONFIRMED) == 0
            else { return nil }
            return ("\(client):\(UInt16(key[32]) << 8 | UInt16(key[33]))", value.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 52, as: UInt32.self) })
        }
    }

    /// externalTrafficPolicy Local: each node sends outside clients to its own backends only, which
    /// see the client's address; a node without one drops them (its health check node port says
    /// 503, so a load balancer does not send them there).
    func testExternalTrafficPolicyLocalKeepsTheClient() throws {
        for i in 1...2 { try startAgent(i, ["--metrics-interval", "1"]) }
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
            try listedServices(2)["\(internalIPs(2)[0]):30081/tcp"]?.localBackends?.isEmpty == true
        }
        let before = try uplinkPackets(2, "drop_no_local_backend")
        let refused = try runProcess(["nsenter", "--net=\(outside)", "python3", testScript("lbclient.py"), "errno", internalIPs(2)[0], "30081"])
        XCTAssertEqual(refused.stdout.trimmingCharacters(in: .whitespacesAndNewlines), #"{"errno": "timeout"}"#)
        try waitFor("the drop counted") { try uplinkPackets(2, "drop_no_local_backend") > before }
        XCTAssertEqual(try seenFromOutside("tcp", internalIPs(1)[0], 30081, count: 6), ["errors": 0, "web1 \(client[0])": 6])
    }
}
