// SPDX-License-Identifier: Apache-2.0
import Datapath
import Foundation
import NodeStore
import XCTest

/// The socket load balancer on a node whose socket hooks sit on the node's own test cgroup: three
/// backend pods, a client pod whose processes run in that cgroup.
final class SocketLBTests: XCTestCase {
    private var node: TestNode!
    private var client = ""
    private var backends: [(name: String, v4: String, v6: String)] = []
    private var servers: [Process] = []

    override func setUpWithError() throws {
        node = try TestNode(self)
        for name in ["be1", "be2", "be3"] {
            let pod = try node.makePod(name)
            let addresses = try node.add("ctr-\(name)", pod: pod).podAddresses
            backends.append((name, addresses[0], addresses[1]))
            servers.append(try startServer(in: pod, "lbserver.py", ["8080", name]))
        }
        addTeardownBlock { [servers] in
            for server in servers where server.isRunning { server.terminate(); server.waitUntilExit() }
        }
        client = try node.makePod("client")
        _ = try node.add("ctr-client", pod: client)
    }

    /// Runs lbclient.py in the client pod (or in `netns`), inside the node's cgroup (or outside it).
    private func ask(_ arguments: String..., in netns: String? = nil, inCgroup: Bool = true) throws -> [String: Any] {
        let command = "exec nsenter --net=\(netns ?? client) python3 \(testScript("lbclient.py")) " + arguments.joined(separator: " ")
        let shell = inCgroup ? "echo $$ > \(node.cgroup)/cgroup.procs && " + command : command
        let result = try runProcess(["sh", "-c", shell])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    @discardableResult
    private func cli(_ arguments: String...) throws -> String {
        let result = try runProcess([pluginBinary] + arguments + ["--root", node.storeRoot])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout
    }

    /// How many sockets the LB remembers translating.
    private func translations() throws -> Int {
        let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", node.storeRoot + "/datapath/sp_translations"])
        return (try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [Any])?.count ?? -1
    }

    /// A socket's translation lives as long as the socket: 300 short connections on each family
    /// leave none behind, so they cannot push long-lived sockets out of the map.
    func testClosedSocketsLeaveNoTranslation() throws {
        try cli("service", "set", "10.96.0.11:80/tcp", backends[0].v4 + ":8080", backends[1].v4 + ":8080")
        try cli("service", "set", "[fd00:96::11]:80/tcp", "[\(backends[0].v6)]:8080")
        try cli("service", "set", "10.96.0.11:53/udp", backends[2].v4 + ":8080")
        XCTAssertEqual(try ask("spread", "10.96.0.11", "80", "300")["errors"] as? Int, 0)
        XCTAssertEqual(try ask("spread", "fd00:96::11", "80", "300")["errors"] as? Int, 0)
        XCTAssertEqual(try ask("peer", "tcp", "10.96.0.11", "80")["peer"] as? [AnyHashable], ["10.96.0.11", 80])
        XCTAssertEqual(try translations(), 0, "every closed TCP socket took its translation along")
        // An unconnected UDP socket's datagrams name no peer a close could find: LRU entries.
        _ = try ask("peer", "udp", "10.96.0.11", "53")
        XCTAssertEqual(try translations(), 1)
    }

    func testConnectsSpreadOverBackendsOnBothFamilies() throws {
        try cli("service", "set", "10.96.0.10:80/tcp", backends[0].v4 + ":8080", backends[1].v4 + ":8080", backends[2].v4 + ":8080")
        let spread = try ask("spread", "10.96.0.10", "80", "300")
        XCTAssertEqual(spread["errors"] as? Int, 0)
        for backend in backends {
            XCTAssertGreaterThanOrEqual(spread[backend.name] as? Int ?? 0, 60, "\(backend.name) gets its share of 300: \(spread)")
        }

        try cli("service", "set", "[fd00:96::10]:80/tcp", "[\(backends[0].v6)]:8080", "[\(backends[1].v6)]:8080")
        let spread6 = try ask("spread", "fd00:96::10", "80", "60")
        XCTAssertEqual(spread6["errors"] as? Int, 0)
        XCTAssertGreaterThan(spread6["be1"] as? Int ?? 0, 0, "\(spread6)")
        XCTAssertGreaterThan(spread6["be2"] as? Int ?? 0, 0, "\(spread6)")
        XCTAssertNil(spread6["be3"])
    }

    func testRepliesAndPeersShowTheService() throws {
        try cli("service", "set", "10.96.0.10:80/tcp", backends[0].v4 + ":8080")
        try cli("service", "set", "10.96.0.10:53/udp", backends[1].v4 + ":8080")
        try cli("service", "set", "[fd00:96::10]:53/udp", "[\(backends[2].v6)]:8080")

        let tcp = try ask("peer", "tcp", "10.96.0.10", "80")
        XCTAssertEqual(tcp["answer"] as? String, "be1")
        XCTAssertEqual(tcp["peer"] as? [AnyHashable], ["10.96.0.10", 80], "getpeername() shows the VIP")
        let udp = try ask("peer", "udp", "10.96.0.10", "53")
        XCTAssertEqual(udp["answer"] as? String, "be2")
        XCTAssertEqual(udp["peer"] as? [AnyHashable], ["10.96.0.10", 53], "recvfrom() shows the VIP")
        let udp6 = try ask("peer", "udp", "fd00:96::10", "53")
        XCTAssertEqual(udp6["answer"] as? String, "be3")
        XCTAssertEqual(udp6["peer"] as? [AnyHashable], ["fd00:96::10", 53])
    }

    func testServiceWithoutBackendsRefusesAtOnce() throws {
        try cli("service", "set", "10.96.0.11:80/tcp")
        XCTAssertEqual(try ask("errno", "10.96.0.11", "80")["errno"] as? String, "ECONNREFUSED")
        try cli("service", "set", "10.96.0.11:80/tcp", backends[0].v4 + ":8080")
        XCTAssertTrue(try ask("errno", "10.96.0.11", "80")["errno"] is NSNull, "a backend again: connects")
    }

    func testOnlyTheHookedCgroupIsBalanced() throws {
        try cli("service", "set", "10.96.0.10:80/tcp", backends[0].v4 + ":8080")
        XCTAssertTrue(try ask("errno", "10.96.0.10", "80")["errno"] is NSNull)
        XCTAssertFalse(try ask("errno", "10.96.0.10", "80", inCgroup: false)["errno"] is NSNull,
                       "outside the cgroup the VIP is just an address nobody has")
    }

    /// A loopback service address is the node's own: the node's sockets are translated, while in a
    /// pod localhost stays the pod's.
    func testLoopbackServicesAreTheNodesOnly() throws {
        try cli("service", "set", "127.0.0.1:30080/tcp", backends[0].v4 + ":8080")
        try cli("service", "set", "[::1]:30080/tcp", "[\(backends[1].v6)]:8080")
        let nodeNetns = "/run/netns/\(node.netns)"
        _ = try shell(["nsenter", "--net=\(client)", "ip", "link", "set", "lo", "up"])   // as a runtime brings it up
        XCTAssertEqual(try ask("peer", "tcp", "127.0.0.1", "30080", in: nodeNetns)["answer"] as? String, "be1")
        XCTAssertEqual(try ask("peer", "tcp", "::1", "30080", in: nodeNetns)["peer"] as? [AnyHashable], ["::1", 30080] as [AnyHashable])
        XCTAssertEqual(try ask("errno", "127.0.0.1", "30080")["errno"] as? String, "ECONNREFUSED", "nothing listens on the pod's own localhost")
        XCTAssertEqual(try ask("errno", "::1", "30080")["errno"] as? String, "ECONNREFUSED")
    }

    func testWeightsAndReplacement() throws {
        try cli("service", "set", "10.96.0.12:80/tcp", backends[0].v4 + ":8080@3", backends[1].v4 + ":8080")
        let listed = try cli("service", "list", "-o", "json")
        XCTAssertTrue(listed.contains("\(backends[0].v4):8080@3"), listed)
        let spread = try ask("spread", "10.96.0.12", "80", "200")
        XCTAssertGreaterThan(spread["be1"] as? Int ?? 0, 2 * (spread["be2"] as? Int ?? 0), "weight 3 against 1: \(spread)")

        try cli("service", "set", "10.96.0.12:80/tcp", backends[2].v4 + ":8080")
        let replaced = try ask("spread", "10.96.0.12", "80", "30")
        XCTAssertEqual(replaced["be3"] as? Int, 30, "new connections only reach the new set: \(replaced)")
        try cli("service", "delete", "10.96.0.12:80/tcp")
        XCTAssertFalse(try cli("service", "list").contains("10.96.0.12"))
    }

    func testApplyOfTenThousandServices() throws {
        var desired: [[String: Any]] = []
        for index in 0..<10_000 {
            desired.append(["service": "10.97.\(index / 250).\(index % 250 + 1):80/tcp", "backends": [backends[index % 3].v4 + ":8080"]])
        }
        let file = "/tmp/\(node.prefix)-services.json"
        try JSONSerialization.data(withJSONObject: desired).write(to: URL(fileURLWithPath: file))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: file) }
        try cli("service", "set", "10.96.0.99:80/tcp", backends[0].v4 + ":8080")
        XCTAssertTrue(try cli("service", "apply", "-f", file).contains("10000 service(s) set, 1 deleted"))

        let listed = try JSONSerialization.jsonObject(with: Data(cli("service", "list", "-o", "json").utf8)) as? [Any]
        XCTAssertEqual(listed?.count, 10_000)
        for index in [0, 4_321, 9_999] {
            let peer = try ask("peer", "tcp", "10.97.\(index / 250).\(index % 250 + 1)", "80")
            XCTAssertEqual(peer["answer"] as? String, backends[index % 3].name, "service #\(index) is translated")
        }
    }

    /// The seed's open problem: a backend leaves, and the connected TCP and UDP sockets still aimed
    /// at it are terminated, in the client pod, so the application reconnects to a live backend.
    func testSocketsOfARemovedBackendAreTerminated() throws {
        try cli("service", "set", "10.96.0.20:80/tcp", backends[0].v4 + ":8080", backends[1].v4 + ":8080")
        try cli("service", "set", "10.96.0.20:53/udp", backends[0].v4 + ":8080")
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "echo $$ > \(node.cgroup)/cgroup.procs && exec nsenter --net=\(client) python3 "
                            + "\(testScript("lbclient.py")) hold 10.96.0.20 80 53 10"]
        let input = Pipe(), output = Pipe()
        holder.standardInput = input
        holder.standardOutput = output
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        let reader = output.fileHandleForReading
        func nextLine() throws -> [String: Any] {
            var line = Data()
            while true {
                let byte = reader.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line += byte
            }
            return try JSONSerialization.jsonObject(with: line) as? [String: Any] ?? [:]
        }
        let before = try nextLine()
        let tcpBefore = try XCTUnwrap(before["tcp"] as? [String])
        XCTAssertEqual(before["udp"] as? String, "be1")
        let onBe1 = tcpBefore.filter { $0 == "be1" }.count
        XCTAssertGreaterThan(onBe1, 0, "some of the 10 connections went to be1: \(tcpBefore)")

        // be1 leaves both services. The sweep's object shares the LB's pins and leaves none behind.
        let pinsBefore = try FileManager.default.contentsOfDirectory(atPath: node.storeRoot + "/datapath").sorted()
        let tcpOut = try cli("service", "set", "10.96.0.20:80/tcp", backends[1].v4 + ":8080")
        XCTAssertTrue(tcpOut.contains("terminated \(onBe1) socket(s)"), tcpOut)
        // Through the API, with a netns path that is no netns among the pods' and one whose pod
        // is gone: the first is named as not swept, the second passes unsaid, the rest are swept.
        let bogus = "/tmp/\(node.prefix)-not-a-netns"
        XCTAssertTrue(FileManager.default.createFile(atPath: bogus, contents: Data()))
        defer { unlink(bogus) }
        let datapath = try Datapath.open(store: EndpointStore.open(root: node.storeRoot))
        let udp = try XCTUnwrap(Service("10.96.0.20:53/udp"))
        let departed = try datapath.services.setService(udp, backends: [try XCTUnwrap(Backend(backends[1].v4 + ":8080"))])
        let sweep = try datapath.connections.terminate(departures: departed.map { (udp, $0) },
                                           namespaces: [client, bogus, "/run/netns/\(node.prefix)-gone"])
        XCTAssertEqual(sweep.terminated, 1)
        XCTAssertEqual(sweep.unreachable.map(\.path), [bogus])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: node.storeRoot + "/datapath").sorted(), pinsBefore)
        XCTAssertFalse(pinsBefore.contains { $0.hasPrefix("sock_terminate") || $0 == "sp_departures" })

        input.fileHandleForWriting.write(Data("go\n".utf8))
        let after = try nextLine()
        let tcpAfter = try XCTUnwrap(after["tcp"] as? [String])
        for (was, now) in zip(tcpBefore, tcpAfter) {
            if was == "be1" {
                XCTAssertTrue(["ECONNABORTED", "EPIPE", "ECONNRESET", "EOF"].contains(now), "a socket to be1 is terminated: \(now)")
            } else {
                XCTAssertEqual(now, "be2", "sockets to the other backend are untouched")
            }
        }
        XCTAssertTrue(["ECONNABORTED", "EDESTADDRREQ"].contains(after["udp"] as? String ?? ""), "the connected UDP socket: \(after)")
        let again = try XCTUnwrap(after["again"] as? [String: String])
        XCTAssertEqual(again["tcp"], "be2", "a reconnect lands on a live backend")
        XCTAssertEqual(again["udp"], "be2")
        holder.waitUntilExit()
    }

    func testPerClientAffinityKeepsABackendUntilItLeaves() throws {
        let all = backends.map { $0.v4 + ":8080" }
        try cli("service", "set", "10.96.0.40:80/tcp", all[0], all[1], all[2], "--affinity", "60")
        XCTAssertTrue(try cli("service", "list").contains("(affinity 60 s)"))
        let pinned = try ask("spread", "10.96.0.40", "80", "40")
        let chosen = backends.map(\.name).filter { pinned[$0] != nil }
        XCTAssertEqual(chosen.count, 1, "one client, one backend while it keeps coming back: \(pinned)")
        XCTAssertEqual(pinned[chosen[0]] as? Int, 40)

        // Its backend leaves: the client moves to a live one, and stays there.
        let remaining = backends.filter { $0.name != chosen[0] }.map { $0.v4 + ":8080" }
        let output = try cli("service", "set", "10.96.0.40:80/tcp", remaining[0], remaining[1], "--affinity", "60")
        XCTAssertTrue(output.contains("departed backend"), output)
        let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", node.storeRoot + "/datapath/sp_affinity"])
        XCTAssertEqual(dump.trimmingCharacters(in: .whitespacesAndNewlines), "[]", "the client's choice was forgotten")
        let moved = try ask("spread", "10.96.0.40", "80", "20")
        XCTAssertNil(moved[chosen[0]], "\(moved)")
        XCTAssertEqual(moved.filter { $0.key != "errors" && ($0.value as? Int ?? 0) > 0 }.count, 1, "\(moved)")
    }
}
