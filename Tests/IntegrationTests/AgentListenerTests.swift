// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// The agent's HTTP listeners (/healthz, /readyz and /metrics; the health check node ports) hold
/// their limits against clients that open many connections or send slowly, and /metrics answers
/// from its snapshot whoever holds the store's lock.
extension AgentClusterTests {
    /// listenerclient.py in node `i`'s netns: its JSON answer.
    func listenerClient(node i: Int, _ arguments: String...) throws -> [String: Any] {
        let result = try runProcess(["nsenter", "--net=/run/netns/\(nodes[i - 1].netns)", "python3", testScript("listenerclient.py")] + arguments)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// On both listeners: connections up to the cap are held and answered, one more is closed at
    /// once; one address holds no more than its share of the cap (eight), and another still gets
    /// in; a client that sends half a request line and waits, or a byte a second, is cut off at
    /// the 5 s deadline. A health check node port answers `Connection: close` and closes. The
    /// agent raised its soft open file limit to the hard one.
    func testListenersCapConnectionsAndCutSlowClients() throws {
        try startAgent(1, softOpenFileLimit: 256)
        try waitFor("node 1 ready") { ready(1) }
        try standIn.putService("default", "lb", clusterIPs: ["10.96.0.21"], ports: [("http", "TCP", 80)],
                               spec: ["type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000])
        try standIn.putEndpointSlice("default", "lb-ipv4", service: "lb", addressType: "IPv4", ports: [("http", "TCP", 8080)],
                                     endpoints: [.init("10.31.1.50", node: "node-1")])
        try waitFor("the health check node port served") {
            try listenerClient(node: 1, "probe", "127.0.0.1", "32000", "/")["status"] as? Int == 200
        }
        let probe = try listenerClient(node: 1, "probe", "127.0.0.1", "32000", "/")
        XCTAssertEqual(probe["connection"] as? String, "close", "\(probe)")
        XCTAssertEqual(probe["closedAfter"] as? Bool, true, "the agent closes it after the answer: \(probe)")

        for (port, cap, path) in [("9876", 16, "/healthz"), ("32000", 64, "/")] {
            let capped = try listenerClient(node: 1, "cap", "127.0.0.1", port, "\(cap)", path, "8")
            XCTAssertEqual(capped["extraClosed"] as? Bool, true, "port \(port): connection \(cap + 1) closed at once: \(capped)")
            XCTAssertEqual(capped["heldStatus"] as? Int, 200, "port \(port): the held connections are answered: \(capped)")
            XCTAssertEqual(capped["againStatus"] as? Int, 200, "port \(port): room again once they are gone: \(capped)")
            let hog = try listenerClient(node: 1, "source", "127.0.0.1", port, "8", path)
            XCTAssertEqual(hog["extraClosed"] as? Bool, true, "port \(port): a ninth from one address closed: \(hog)")
            XCTAssertEqual(hog["otherStatus"] as? Int, 200, "port \(port): another address answered: \(hog)")
            for mode in ["half", "trickle"] {
                let slow = try listenerClient(node: 1, "slow", "127.0.0.1", port, mode)
                XCTAssertEqual(slow["closed"] as? Bool, true, "port \(port) \(mode): \(slow)")
                XCTAssertLessThanOrEqual(slow["seconds"] as? Double ?? 99, 6.5, "port \(port) \(mode): cut at the deadline: \(slow)")
            }
        }

        let limits = try String(contentsOfFile: "/proc/\(agents[1]!.processIdentifier)/limits", encoding: .utf8)
        let openFiles = try XCTUnwrap(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") })
        let figures = openFiles.split(separator: " ").dropFirst(3).prefix(2)
        XCTAssertEqual(figures.count, 2, "\(openFiles)")
        XCTAssertEqual(figures.first, figures.last, "soft limit raised to the hard one: \(openFiles)")
        XCTAssertNotEqual(figures.first, "256", "\(openFiles)")
    }

    /// /metrics answers at once, with the datapath's figures, while the test holds the store's
    /// lock (as a long ADD or a stuck tool would): the figures come from the last snapshot.
    func testMetricsAnswerWhileTheStoreIsLocked() throws {
        try startAgent(1, ["--metrics-interval", "1"])
        try waitFor("node 1 ready") { ready(1) }
        let metrics = { try runProcess(["nsenter", "--net=/run/netns/\(self.nodes[0].netns)", "curl", "-s", "-m", "3", "-w", "\n%{http_code}",
                                         "http://127.0.0.1:9876/metrics"]).stdout }
        try waitFor("the datapath's figures in /metrics") { try metrics().contains("swiftpath_endpoints{family=\"ipv4\"}") }

        let store = open(nodes[0].storeRoot, O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(store, 0)
        defer { close(store) }
        XCTAssertEqual(flock(store, LOCK_EX), 0)
        defer { flock(store, LOCK_UN) }
        sleep(2)   // snapshots fall due, and wait for the lock
        let start = Date()
        let answer = try metrics()
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertTrue(answer.hasSuffix("\n200"), "answered under the lock: \(answer.suffix(200))")
        XCTAssertTrue(answer.contains("swiftpath_endpoints{family=\"ipv4\"}"), "with the datapath's figures: \(answer.suffix(400))")
        XCTAssertTrue(answer.contains("swiftpath_agent_datapath_snapshot_timestamp_seconds"), answer)
        XCTAssertLessThan(elapsed, 1, "promptly")
    }
}
