// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// The agents as the cluster's service proxy: Services and EndpointSlices put on the API stand-in
/// reach the socket load balancer of every node, and pods and the nodes' own processes connect to
/// them as kube-proxy would have them connect.
extension AgentClusterTests {
    /// A pod of the cluster test: its netns path and addresses.
    typealias Pod = (path: String, v4: String, v6: String)

    /// Runs lbclient.py in `netns` inside node `i`'s cgroup (the one its socket hooks sit on), as a
    /// pod's process or the node's own would run; its JSON answer.
    func ask(node i: Int, in netns: String, _ arguments: String...) throws -> [String: Any] {
        let command = "echo $$ > \(nodes[i - 1].cgroup)/cgroup.procs && exec nsenter --net=\(netns) python3 "
            + testScript("lbclient.py") + " " + arguments.joined(separator: " ")
        let result = try runProcess(["sh", "-c", command])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// The services node `i`'s socket load balancer holds: "address:port/proto" to its backends.
    func programmedServices(_ i: Int) throws -> [String: [String]] {
        let listed = try runProcess([pluginBinary, "service", "list", "--root", nodes[i - 1].storeRoot, "-o", "json"])
        let views = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: views.map { ($0["service"] as? String ?? "", $0["backends"] as? [String] ?? []) })
    }

    /// The source ranges of each ranged service node `i` has programmed.
    func programmedSourceRanges(_ i: Int) throws -> [String: [String]] {
        let listed = try runProcess([pluginBinary, "service", "list", "--root", nodes[i - 1].storeRoot, "-o", "json"])
        let views = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: views.compactMap { view in
            (view["sourceRanges"] as? [String]).map { (view["service"] as? String ?? "", $0) }
        })
    }

    /// A metric of node `i`'s agent, by its full name (0 when absent).
    func agentMetric(_ i: Int, _ name: String) throws -> Double {
        let metrics = try runProcess(["nsenter", "--net=/run/netns/\(nodes[i - 1].netns)", "curl", "-s", "http://127.0.0.1:9876/metrics"]).stdout
        let line = metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }
        return line.flatMap { Double($0.split(separator: " ")[1]) } ?? 0
    }

    /// The agent's count of services it set or deleted in the maps since it started.
    func serviceWrites(_ i: Int) throws -> Double { try agentMetric(i, "swiftpath_agent_service_writes_total") }

    /// Backend pods web1 on node 1 and web2 on node 2, each answering on 8080 (TCP and UDP) with
    /// its name; stopped when the test ends.
    func webBackends() throws -> [Pod] {
        let web = [try addPod(1, "web1"), try addPod(2, "web2")]
        for (index, pod) in web.enumerated() {
            let server = try startServer(in: pod.path, "lbserver.py", ["8080", "web\(index + 1)"])
            addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        }
        return web
    }

    /// `lbclient.py hold`: connections opened now, used again after `release()`.
    final class Holder {
        private let process = Process()
        private let input = Pipe(), output = Pipe()

        init(node: TestNode, netns: String, _ arguments: String) throws {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "echo $$ > \(node.cgroup)/cgroup.procs && exec nsenter --net=\(netns) python3 "
                                 + "\(testScript("lbclient.py")) hold \(arguments)"]
            process.standardInput = input
            process.standardOutput = output
            try process.run()
        }

        deinit { if process.isRunning { process.terminate() } }

        func nextLine() throws -> [String: Any] {
            var line = Data()
            while true {
                let byte = output.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line += byte
            }
            return try JSONSerialization.jsonObject(with: line) as? [String: Any] ?? [:]
        }

        /// Lets the client use its sockets once more; its report.
        func release() throws -> [String: Any] {
            input.fileHandleForWriting.write(Data("go\n".utf8))
            defer { process.waitUntilExit() }
            return try nextLine()
        }
    }

    func testServicesFromTheAPIOnEveryNode() throws {
        for i in 1...3 { try startAgent(i) }
        try waitFor("every node ready (datapath, plugin, conflist, watches)") { (1...3).allSatisfy(ready) }

        // Backends on nodes 1 and 2, a client pod on each node.
        let web = try webBackends()
        let clients = try (1...3).map { try addPod($0, "client") }
        let nodeNetns = { (i: Int) in "/run/netns/\(self.nodes[i - 1].netns)" }

        // A dual-stack Service whose named ports resolve to 8080 in its slices; and what a proxy
        // must leave alone: a headless Service, an ExternalName, one another proxy claims.
        let ports = [("http", "TCP", 80), ("dns", "UDP", 53)], targets = [("http", "TCP", 8080), ("dns", "UDP", 8080)]
        func putWebSlices(_ members: [(pod: Pod, node: String, ready: Bool, terminating: Bool)], service: String = "web") throws {
            for (family, addressType) in [(\Pod.v4, "IPv4"), (\Pod.v6, "IPv6")] {
                try standIn.putEndpointSlice("default", "\(service)-\(addressType.lowercased())", service: service, addressType: addressType, ports: targets,
                                             endpoints: members.map { .init($0.pod[keyPath: family], node: $0.node, ready: $0.ready, terminating: $0.terminating) })
            }
        }
        let both = [(web[0], "node-1", true, false), (web[1], "node-2", true, false)]
        try standIn.putService("default", "web", clusterIPs: ["10.96.0.10", "fd00:96::10"], ports: ports)
        try putWebSlices(both)
        try standIn.putService("default", "headless", clusterIPs: ["None"], ports: ports)
        try putWebSlices(both, service: "headless")
        try standIn.putService("default", "ext", clusterIPs: [], ports: ports,
                               spec: ["type": "ExternalName", "externalName": "example.com", "externalIPs": ["10.96.0.99"]])
        try standIn.putService("default", "other", clusterIPs: ["10.96.0.98"], ports: ports,
                               labels: ["service.kubernetes.io/service-proxy-name": "someone-else"])
        try putWebSlices(both, service: "other")
        try standIn.putService("default", "empty", clusterIPs: ["10.96.0.11"], ports: ports)
        try standIn.putService("default", "sticky", clusterIPs: ["10.96.0.13"], ports: ports, spec: ["sessionAffinity": "ClientIP"])
        try putWebSlices(both, service: "sticky")
        try standIn.putService("default", "local", clusterIPs: ["10.96.0.14"], ports: ports, spec: ["internalTrafficPolicy": "Local"])
        try putWebSlices(both, service: "local")
        try standIn.putService("default", "signalling", clusterIPs: ["10.96.0.15"], ports: [("sig", "SCTP", 9)])

        // What kube-proxy would program on node `i`.
        let v4 = web.map { "\($0.v4):8080" }, v6 = web.map { "[\($0.v6)]:8080" }
        func expected(_ i: Int) -> [String: [String]] {
            ["10.96.0.10:80/tcp": v4, "10.96.0.10:53/udp": v4, "[fd00:96::10]:80/tcp": v6, "[fd00:96::10]:53/udp": v6,
             "10.96.0.11:80/tcp": [], "10.96.0.11:53/udp": [], "10.96.0.13:80/tcp": v4, "10.96.0.13:53/udp": v4,
             "10.96.0.14:80/tcp": i == 3 ? [] : [v4[i - 1]], "10.96.0.14:53/udp": i == 3 ? [] : [v4[i - 1]]]
        }
        try waitFor("the services programmed on every node") { try (1...3).allSatisfy { try programmedServices($0) == expected($0) } }
        // The SCTP-only Service programs nothing: only the agents' count shows they saw it.
        try waitFor("the SCTP port counted on every node") {
            try (1...3).allSatisfy { try agentMetric($0, "swiftpath_agent_service_ports_unbalanced_count") == 1 }
        }

        // From a pod and from the node itself on every node, over both families: both backends.
        for i in 1...3 {
            for netns in [clients[i - 1].path, nodeNetns(i)] {
                for address in ["10.96.0.10", "fd00:96::10"] {
                    let spread = try ask(node: i, in: netns, "spread", address, "80", "20")
                    XCTAssertEqual(spread["errors"] as? Int, 0, "node \(i) \(netns) to \(address): \(spread)")
                    XCTAssertGreaterThan(spread["web1"] as? Int ?? 0, 0, "node \(i) \(netns) to \(address): \(spread)")
                    XCTAssertGreaterThan(spread["web2"] as? Int ?? 0, 0, "node \(i) \(netns) to \(address): \(spread)")
                }
            }
        }
        // The peer a client sees is the Service, for TCP and for UDP.
        let tcpPeer = try ask(node: 3, in: clients[2].path, "peer", "tcp", "10.96.0.10", "80")
        XCTAssertEqual(tcpPeer["peer"] as? [AnyHashable], ["10.96.0.10", 80] as [AnyHashable])
        let udpPeer = try ask(node: 3, in: clients[2].path, "peer", "udp", "fd00:96::10", "53")
        XCTAssertEqual(udpPeer["peer"] as? [AnyHashable], ["fd00:96::10", 53] as [AnyHashable])
        XCTAssertTrue(["web1", "web2"].contains(udpPeer["answer"] as? String ?? ""), "\(udpPeer)")

        // No endpoint: refused at once. ClientIP affinity: one backend per client. Local: this node's only.
        XCTAssertEqual(try ask(node: 1, in: clients[0].path, "errno", "10.96.0.11", "80")["errno"] as? String, "ECONNREFUSED")
        let sticky = try ask(node: 3, in: clients[2].path, "spread", "10.96.0.13", "80", "20")
        XCTAssertEqual(sticky.filter { $0.key != "errors" }.map(\.value) as? [Int], [20], "\(sticky)")
        XCTAssertEqual(try ask(node: 1, in: clients[0].path, "spread", "10.96.0.14", "80", "10")["web1"] as? Int, 10)
        XCTAssertEqual(try ask(node: 2, in: nodeNetns(2), "spread", "10.96.0.14", "80", "10")["web2"] as? Int, 10)
        XCTAssertEqual(try ask(node: 3, in: clients[2].path, "errno", "10.96.0.14", "80")["errno"] as? String, "ECONNREFUSED")

        // Node 1's agent restarted, the API compacted and every watch cut: connections stay, and
        // nothing that did not change is written.
        let survivor = try Holder(node: nodes[0], netns: clients[0].path, "10.96.0.10 80 53 6")
        let beforeRestart = try survivor.nextLine()
        let writesBefore = try [2, 3].map(serviceWrites)
        stop(agents[1]!)
        try startAgent(1)
        try waitFor("node 1 ready again") { ready(1) }
        try standIn.compact()
        try standIn.dropWatches()
        sleep(5)   // a relist and two resyncs
        XCTAssertEqual(try serviceWrites(1), 0, "the restarted agent found every service programmed")
        XCTAssertEqual(try [2, 3].map(serviceWrites), writesBefore, "a relist rewrites nothing")
        XCTAssertEqual(try programmedServices(1), expected(1))
        let afterRestart = try survivor.release()
        XCTAssertEqual(afterRestart["tcp"] as? [String], beforeRestart["tcp"] as? [String], "connections untouched")
        XCTAssertEqual(afterRestart["udp"] as? String, beforeRestart["udp"] as? String)

        // Scaled down while a client on node 3 holds TCP and connected UDP sockets: those on web1
        // are terminated, the others untouched, reconnects land on web2.
        let writesOnNode3 = try serviceWrites(3)
        let holder = try Holder(node: nodes[2], netns: clients[2].path, "10.96.0.10 80 53 10")
        let before = try holder.nextLine()
        let tcpBefore = try XCTUnwrap(before["tcp"] as? [String])
        try putWebSlices([(web[1], "node-2", true, false)])
        try waitFor("web1 gone from node 3") {
            let table = try programmedServices(3)
            return table["10.96.0.10:53/udp"] == [v4[1]] && table["[fd00:96::10]:53/udp"] == [v6[1]]
        }
        let after = try holder.release()
        for (was, now) in zip(tcpBefore, try XCTUnwrap(after["tcp"] as? [String])) {
            if was == "web1" {
                XCTAssertTrue(["ECONNABORTED", "EPIPE", "ECONNRESET", "EOF"].contains(now), "a socket to web1 is terminated: \(now)")
            } else {
                XCTAssertEqual(now, "web2", "sockets to web2 are untouched")
            }
        }
        if before["udp"] as? String == "web1" {
            XCTAssertTrue(["ECONNABORTED", "EDESTADDRREQ"].contains(after["udp"] as? String ?? ""), "the connected UDP socket: \(after)")
        } else {
            XCTAssertEqual(after["udp"] as? String, "web2")
        }
        XCTAssertEqual(after["again"] as? [String: String], ["tcp": "web2", "udp": "web2"], "reconnects land on web2")
        XCTAssertEqual(try serviceWrites(3) - writesOnNode3, 4, "the slices' update touched web's four entries only")

        // Terminating endpoints serve only while none is ready.
        try putWebSlices([(web[0], "node-1", false, true)])
        try waitFor("the terminating endpoint programmed") { try programmedServices(2)["10.96.0.10:80/tcp"] == [v4[0]] }
        XCTAssertEqual(try ask(node: 2, in: clients[1].path, "spread", "10.96.0.10", "80", "5")["web1"] as? Int, 5)
        try putWebSlices([(web[0], "node-1", false, true), (web[1], "node-2", true, false)])
        try waitFor("the ready endpoint preferred") { try programmedServices(2)["10.96.0.10:80/tcp"] == [v4[1]] }

        // The Service deleted: its entries go, the others stay.
        try standIn.deleteService("default", "web")
        try waitFor("web gone") { try programmedServices(1)["10.96.0.10:80/tcp"] == nil }
        XCTAssertNotNil(try programmedServices(1)["10.96.0.13:80/tcp"])
    }

    /// Node ports from the node's own processes and from its pods: on the addresses the Node lists
    /// and on the node's localhost, both families, TCP and UDP, every endpoint whatever the
    /// externalTrafficPolicy (kube-proxy short-circuits traffic from inside the cluster); gone when
    /// the Service stops being a NodePort. A health check node port answers as kube-proxy's does.
    func testNodePortsFromTheNodeAndItsPods() throws {
        for i in 1...2 { try startAgent(i) }
        try waitFor("nodes 1 and 2 ready") { (1...2).allSatisfy(ready) }
        let web = try webBackends()
        let client = try addPod(2, "client")

        let nodePorts: [[String: Any]] = [["name": "http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080],
                                          ["name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns", "nodePort": 30053]]
        try standIn.putService("default", "np", clusterIPs: ["10.96.0.20", "fd00:96::20"], ports: [("http", "TCP", 80), ("dns", "UDP", 53)],
                               spec: ["type": "NodePort", "externalTrafficPolicy": "Local", "ports": nodePorts])
        for (family, addressType) in [(\Pod.v4, "IPv4"), (\Pod.v6, "IPv6")] {
            try standIn.putEndpointSlice("default", "np-\(addressType.lowercased())", service: "np", addressType: addressType,
                                         ports: [("http", "TCP", 8080), ("dns", "UDP", 8080)],
                                         endpoints: [.init(web[0][keyPath: family], node: "node-1"), .init(web[1][keyPath: family], node: "node-2")])
        }
        let v4 = web.map { "\($0.v4):8080" }, v6 = web.map { "[\($0.v6)]:8080" }
        func nodePortEntries(_ i: Int) throws -> [String: [String]] {
            try programmedServices(i).filter { $0.key.contains(":30080/") || $0.key.contains(":30053/") }
        }
        func expected(_ i: Int) -> [String: [String]] {
            let (address4, address6) = (internalIPs(i)[0], internalIPs(i)[1])
            return ["\(address4):30080/tcp": v4, "\(address4):30053/udp": v4, "[\(address6)]:30080/tcp": v6, "[\(address6)]:30053/udp": v6,
                    "127.0.0.1:30080/tcp": v4, "127.0.0.1:30053/udp": v4, "[::1]:30080/tcp": v6, "[::1]:30053/udp": v6]
        }
        try waitFor("the node ports on each node's own addresses") { try (1...2).allSatisfy { try nodePortEntries($0) == expected($0) } }

        // From node 1 itself and from a pod on node 2, to their own node's addresses.
        for (i, netns) in [(1, "/run/netns/\(nodes[0].netns)"), (2, client.path)] {
            for address in internalIPs(i) {
                let spread = try ask(node: i, in: netns, "spread", address, "30080", "20")
                XCTAssertEqual(spread["errors"] as? Int, 0, "node \(i) \(netns) to \(address): \(spread)")
                XCTAssertGreaterThan(spread["web1"] as? Int ?? 0, 0, "Local does not narrow traffic from inside: \(spread)")
                XCTAssertGreaterThan(spread["web2"] as? Int ?? 0, 0, "node \(i) \(netns) to \(address): \(spread)")
            }
        }
        // localhost is the node's in the node, the pod's in a pod.
        _ = try shell(["nsenter", "--net=\(client.path)", "ip", "link", "set", "lo", "up"])   // as a runtime brings it up
        for address in ["127.0.0.1", "::1"] {
            let spread = try ask(node: 1, in: "/run/netns/\(nodes[0].netns)", "spread", address, "30080", "20")
            XCTAssertEqual(spread["errors"] as? Int, 0, "node 1 to \(address): \(spread)")
            XCTAssertGreaterThan(spread["web2"] as? Int ?? 0, 0, "node 1 to \(address): \(spread)")
            XCTAssertEqual(try ask(node: 2, in: client.path, "errno", address, "30080")["errno"] as? String, "ECONNREFUSED")
        }
        let udpPeer = try ask(node: 2, in: client.path, "peer", "udp", internalIPs(2)[1], "30053")
        XCTAssertEqual(udpPeer["peer"] as? [AnyHashable], [internalIPs(2)[1], 30053] as [AnyHashable], "the reply comes from the node port")

        // A health check node port, as a load balancer probes it from outside: 200 on the node
        // with a ready endpoint, 503 on the other, as kube-proxy answers.
        try standIn.putService("default", "lb", clusterIPs: ["10.96.0.21"], ports: [("http", "TCP", 80)],
                               spec: ["type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000])
        try standIn.putEndpointSlice("default", "lb-ipv4", service: "lb", addressType: "IPv4", ports: [("http", "TCP", 8080)],
                                     endpoints: [.init(web[0].v4, node: "node-1"), .init(web[1].v4, node: "node-2", ready: false, terminating: true)])
        func probe(_ i: Int) throws -> (status: String, body: [String: Any]) {
            let answer = try runProcess(["nsenter", "--net=/run/netns/\(nodes[2].netns)", "curl", "-s", "-m", "2", "-w", "\n%{http_code}",
                                         "http://\(internalIPs(i)[0]):32000/"]).stdout
            // The body, then the status on a line of its own ("000": no connection, no body).
            let lines = answer.split(separator: "\n", omittingEmptySubsequences: false)
            let body = lines.count == 2 && !lines[0].isEmpty ? try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any] : nil
            return (lines.last.map(String.init) ?? "", body ?? [:])
        }
        try waitFor("the health check node port served") { try probe(1).status == "200" && probe(2).status == "503" }
        XCTAssertEqual(try probe(1).body["localEndpoints"] as? Int, 1)
        XCTAssertEqual(try probe(2).body["localEndpoints"] as? Int, 0)
        XCTAssertEqual(try probe(1).body["service"] as? [String: String], ["namespace": "default", "name": "lb"])
        try standIn.putEndpointSlice("default", "lb-ipv4", service: "lb", addressType: "IPv4", ports: [("http", "TCP", 8080)],
                                     endpoints: [.init(web[0].v4, node: "node-1"), .init(web[1].v4, node: "node-2")])
        try waitFor("node 2 healthy once its endpoint is ready") { try probe(2).status == "200" }
        try standIn.deleteService("default", "lb")
        try waitFor("the port closed with the Service") { try (1...2).allSatisfy { try probe($0).status == "000" } }

        // A ClusterIP again: the node ports go, the cluster IPs stay.
        try standIn.putService("default", "np", clusterIPs: ["10.96.0.20", "fd00:96::20"], ports: [("http", "TCP", 80), ("dns", "UDP", 53)])
        try waitFor("the node ports gone") { try (1...2).allSatisfy { try nodePortEntries($0).isEmpty } }
        XCTAssertEqual(try programmedServices(1)["10.96.0.20:80/tcp"], v4)
    }

    /// CVE-2020-8554: a Service claiming 8.8.8.8, another node's address, an address node 1 has
    /// that the API does not list, and an address of a node's pod CIDR as external IPs gets none
    /// of them programmed, only the one inside the range the operator allows; its LoadBalancer IP
    /// in ipMode Proxy is left to the load balancer; its loadBalancerSourceRanges hold at the
    /// addresses it keeps, not at its cluster IP. The refusals are counted by reason and logged
    /// once, not at every resync.
    func testExternalAddressesOnlyWhereTheOperatorAllows() throws {
        try nodes[0].exec("ip", "addr", "add", "203.0.113.50/32", "dev", "lo")
        try startAgent(1, ["--external-ip-cidrs", "203.0.113.0/24,2001:db8:1::/48"])
        try waitFor("node 1 ready") { ready(1) }
        try standIn.putService("default", "claimant", clusterIPs: ["10.96.0.70"], ports: [("http", "TCP", 80)],
                               spec: ["type": "LoadBalancer", "externalIPs": ["8.8.8.8", internalIPs(2)[0], "203.0.113.50", "10.31.2.9", "203.0.113.7"],
                                      "loadBalancerSourceRanges": ["192.0.2.0/24", "2001:db8:9::/48"]],
                               status: ["loadBalancer": ["ingress": [["ip": "198.51.100.41", "ipMode": "Proxy"], ["ip": "198.51.100.40", "ipMode": "VIP"]]]])
        try standIn.putEndpointSlice("default", "claimant-ipv4", service: "claimant", addressType: "IPv4", ports: [("http", "TCP", 8080)],
                                     endpoints: [.init("10.31.1.50", node: "node-1")])
        let expected = ["10.96.0.70:80/tcp": ["10.31.1.50:8080"], "203.0.113.7:80/tcp": ["10.31.1.50:8080"], "198.51.100.40:80/tcp": ["10.31.1.50:8080"]]
        try waitFor("the Service programmed without the addresses it may not claim") { try programmedServices(1) == expected }
        XCTAssertEqual(try programmedSourceRanges(1), ["203.0.113.7:80/tcp": ["192.0.2.0/24"], "198.51.100.40:80/tcp": ["192.0.2.0/24"]])
        let refused = { (reason: String) in try self.agentMetric(1, "swiftpath_agent_service_addresses_refused_count{reason=\"\(reason)\"}") }
        XCTAssertEqual(try refused("not_allowed"), 1)
        XCTAssertEqual(try refused("node_address"), 2, "another node's, and one of node 1's own")
        XCTAssertEqual(try refused("cluster_range"), 1)
        XCTAssertEqual(try refused("special"), 0)

        sleep(5)   // two resyncs
        XCTAssertEqual(try programmedServices(1), expected)
        let log = try String(contentsOfFile: "\(folder)/agent1.log", encoding: .utf8)
        let warnings = log.split(separator: "\n").filter { $0.contains("service addresses not programmed") }
        XCTAssertEqual(warnings.count, 1, "logged once, not at each resync: \(warnings)")
        XCTAssertTrue(warnings.first?.contains("externalIP 8.8.8.8: not_allowed") == true, "\(warnings)")
    }

    /// A node that joins with an address a Service already claims as external takes it from the
    /// Service (a node's address is never a Service's), and gives it back when it leaves, with
    /// nothing else written and no resync to mend it.
    func testAJoiningNodesAddressIsNoLongerAServicesExternalIP() throws {
        try startAgent(1, ["--external-ip-cidrs", "10.0.0.0/24", "--resync-seconds", "600"])   // no resync mends it
        try waitFor("node 1 ready") { ready(1) }
        try standIn.putService("default", "claimant", clusterIPs: ["10.96.0.71"], ports: [("http", "TCP", 80)], spec: ["externalIPs": ["10.0.0.9"]])
        try standIn.putService("default", "plain", clusterIPs: ["10.96.0.72"], ports: [("http", "TCP", 80)])
        for name in ["claimant", "plain"] {
            try standIn.putEndpointSlice("default", "\(name)-ipv4", service: name, addressType: "IPv4", ports: [("http", "TCP", 8080)],
                                         endpoints: [.init("10.31.1.51", node: "node-1")])
        }
        try waitFor("both Services programmed with their endpoint") {
            let programmed = try programmedServices(1)
            return ["10.0.0.9:80/tcp", "10.96.0.71:80/tcp", "10.96.0.72:80/tcp"].allSatisfy { programmed[$0] == ["10.31.1.51:8080"] }
        }
        let writes = try serviceWrites(1)
        try standIn.putNode("node-9", podCIDRs: ["10.31.9.0/24"], internalIPs: ["10.0.0.9"])
        try waitFor("the joining node's address taken from the Service", seconds: 10) { try programmedServices(1)["10.0.0.9:80/tcp"] == nil }
        XCTAssertNotNil(try programmedServices(1)["10.96.0.71:80/tcp"], "its cluster IP stays")
        XCTAssertEqual(try serviceWrites(1), writes + 1, "one entry deleted, nothing else written")
        try standIn.deleteNode("node-9")
        try waitFor("given back when the node leaves", seconds: 10) { try programmedServices(1)["10.0.0.9:80/tcp"] != nil }
    }

    /// kube-proxy's rules cannot see pod traffic routed in BPF: beside it, the agent does not make
    /// the node Ready and says why; `datapath status` says so too.
    func testNodeWithKubeProxyIsNotMadeReady() throws {
        let node = nodes[0]
        try node.exec("nft", "add", "table", "ip", "nat")
        try node.exec("nft", "add", "chain", "ip", "nat", "KUBE-SERVICES")
        try startAgent(1)
        let readyz = { try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", "curl", "-s", "http://127.0.0.1:9876/readyz"]).stdout }
        try waitFor("the agent reports kube-proxy") { try readyz().contains("kube-proxy runs on this node (iptables chain KUBE-SERVICES in table ip nat)") }
        XCTAssertFalse(ready(1))
        XCTAssertFalse(FileManager.default.fileExists(atPath: conflist(1)), "no conflist beside kube-proxy")

        try node.exec("nft", "delete", "table", "ip", "nat")
        try waitFor("node 1 ready once kube-proxy's rules are gone") { ready(1) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: conflist(1)))

        let status = { try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "status", "--root", node.storeRoot]).stdout }
        let clean = try status()
        XCTAssertFalse(clean.contains("kube-proxy"), clean)
        // Any local user may listen on 10256: only root's listener is taken for kube-proxy.
        let squatter = Process()
        squatter.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        squatter.arguments = ["--net=/run/netns/\(node.netns)", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                              "import socket, sys; s = socket.socket(); s.bind(('0.0.0.0', 10256)); s.listen(); print('ready', flush=True); sys.stdin.read()"]
        let squatterOutput = Pipe(), squatterInput = Pipe()
        squatter.standardOutput = squatterOutput
        squatter.standardInput = squatterInput
        try squatter.run()
        XCTAssertTrue(String(decoding: squatterOutput.fileHandleForReading.availableData, as: UTF8.self).hasPrefix("ready"), "nobody's listener is up")
        sleep(3)   // a resync or more
        XCTAssertTrue(ready(1), "an unprivileged listener on 10256 does not take the node out")
        XCTAssertFalse(try status().contains("kube-proxy"))
        try squatterInput.fileHandleForWriting.close()
        squatter.waitUntilExit()

        let healthPort = try startServer(in: "/run/netns/\(node.netns)", "lbserver.py", ["10256", "kube-proxy"])
        defer { healthPort.terminate(); healthPort.waitUntilExit() }
        let detected = try status()
        XCTAssertTrue(detected.contains("kube-proxy  DETECTED (a listener of root's on kube-proxy's health port 10256)"), detected)
    }
}
