// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// The agent's HTTP listeners (/healthz, /readyz and /metrics; the health check node ports) hold
/// their limits against clients that open many connections or send slowly.
extension AgentClusterTests {
    /// listenerclient.py in node `i`'s netns: its JSON answer.
    func listenerClient(node i: Int, _ arguments: String...) throws -> [String: Any] {
        let result = try runProcess(["nsenter", "--net=/run/netns/\(nodes[i - 1].netns)", "python3", testScript("listenerclient.py")] + arguments)
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// On both listeners: connections up to the cap are held and answered, one more is closed at
    /// once; a client that sends half a request line and waits, or a byte a second, is cut off at
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
            let capped = try listenerClient(node: 1, "cap", "127.0.0.1", port, "\(cap)", path)
            XCTAssertEqual(capped["extraClosed"] as? Bool, true, "port \(port): connection \(cap + 1) closed at once: \(capped)")
            XCTAssertEqual(capped["heldStatus"] as? Int, 200, "port \(port): the held connections are answered: \(capped)")
            XCTAssertEqual(capped["againStatus"] as? Int, 200, "port \(port): room again once they are gone: \(capped)")
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
}
