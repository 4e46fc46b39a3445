// SPDX-License-Identifier: Apache-2.0
import BPFTestObjects
import Datapath
import Foundation
import NodeStore
import XCTest

/// The agent restarted (kill -9, as a crash or an OOM kill ends it) and upgraded (started over a
/// datapath another build loaded) under held node-port connections: it writes nothing that did
/// not change, at no moment of its start, and every held connection carries on.
extension AgentClusterTests {
    /// The service and slot maps of node `i`, as bpftool dumps them: ids, slots and backends.
    func serviceMaps(_ i: Int) throws -> [String: Set<String>] {
        var maps: [String: Set<String>] = [:]
        for name in ["sp_services", "sp_slots"] {
            let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", "\(nodes[i - 1].storeRoot)/datapath/\(name)"])
            let entries = try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [[String: Any]] ?? []
            maps[name] = Set(entries.map { "\($0["key"] ?? "") -> \($0["value"] ?? "")" })
        }
        return maps
    }

    /// Restarts node 1's agent with kill -9, watching its service maps from the moment it starts
    /// until it is ready and has resynced: they never differ from `programmed`.
    private func restartAgentWatchingServiceMaps(_ programmed: [String: Set<String>], _ what: String) throws {
        stop(agents[1]!)
        try startAgent(1)
        let start = Date()
        var samples = 0
        var readySince: Date?
        while Date().timeIntervalSince(readySince ?? Date()) < 5 {
            XCTAssertLessThan(Date().timeIntervalSince(start), 60, "\(what): node 1 ready within a minute")
            if Date().timeIntervalSince(start) > 60 { break }
            let now = try serviceMaps(1)
            samples += 1
            if now != programmed {
                let changes = programmed.keys.sorted().map { map in
                    "\(map): gone \(programmed[map]!.subtracting(now[map] ?? [])), new \((now[map] ?? []).subtracting(programmed[map]!))"
                }
                XCTFail("\(what): the service maps changed \(Date().timeIntervalSince(start)) s after the start: \(changes)")
                return
            }
            if readySince == nil && ready(1) { readySince = Date() }
            usleep(50_000)
        }
        XCTAssertGreaterThan(samples, 20, what)
        XCTAssertEqual(try serviceWrites(1), 0, "\(what): no service written")
    }

    /// A node port held open from outside (translated at node 1's uplink) and from node 1's own
    /// processes (balanced at their sockets) across two restarts of node 1's agent: one plain,
    /// one over a datapath another build loaded, which the agent replaces in place.
    func testAgentRestartAndUpgradeUnderHeldNodePortConnections() throws {
        for i in 1...2 { try startAgent(i) }
        try waitFor("nodes 1 and 2 ready") { (1...2).allSatisfy(ready) }
        let web = try webBackends()
        try putNodePortService("np", tcp: 30080, udp: 30053, policy: "Cluster", externalIPs: [],
                               members: [(web[0], "node-1"), (web[1], "node-2")])
        let address = internalIPs(1)[0]
        try waitFor("the node ports programmed on node 1's addresses and localhost") {
            let listed = try listedServices(1)
            return ["\(address):30080/tcp", "[\(internalIPs(1)[1])]:30053/udp", "127.0.0.1:30080/tcp"]
                .allSatisfy { listed[$0]?.backends.count == 2 }
        }
        let fromOutside = try Holder(node: nodes[2], netns: outside, "\(address) 30080 30053 16")
        let fromTheNode = try Holder(node: nodes[0], netns: "/run/netns/\(nodes[0].netns)", "127.0.0.1 30080 30053 8")
        let heldOutside = try fromOutside.nextLine(), heldOnNode = try fromTheNode.nextLine()
        XCTAssertEqual(Set(heldOutside["tcp"] as? [String] ?? []), ["web1", "web2"], "\(heldOutside)")
        XCTAssertEqual((heldOnNode["tcp"] as? [String])?.count, 8, "\(heldOnNode)")
        sleep(3)   // a resync: the table as the agent keeps it
        let programmed = try serviceMaps(1)
        let translated = { () throws -> Set<String> in
            Set(try self.translatedConnections(1).map { "\($0.proto) \($0.client) \($0.backend)" })
        }
        let held = try translated()
        XCTAssertEqual(held.count, 17, "16 TCP connections and the UDP flow: \(held)")
        XCTAssertTrue(programmed["sp_services"]?.isEmpty == false)

        // The Nodes answered last, as a busy API server may: the Services are known before the
        // addresses of the node their node ports are on.
        try standIn.slow(seconds: 2, resource: "nodes")
        try restartAgentWatchingServiceMaps(programmed, "restart")

        // The build that ran before the upgrade: its programs, the same maps.
        stop(agents[1]!)
        _ = try Datapath.open(store: try EndpointStore.open(root: nodes[0].storeRoot), object: .datapath_variant)
        XCTAssertEqual(try Datapath.loadedBuild(storeRoot: nodes[0].storeRoot), BPFObject.datapath_variant.hash)
        XCTAssertEqual(try serviceMaps(1), programmed, "the other build kept the maps")
        try restartAgentWatchingServiceMaps(programmed, "upgrade")
        XCTAssertEqual(try Datapath.loadedBuild(storeRoot: nodes[0].storeRoot), BPFObject.datapath.hash, "the agent's build loaded")

        XCTAssertEqual(try translated(), held, "the uplink's connection table kept")
        let afterOutside = try fromOutside.release(), afterOnNode = try fromTheNode.release()
        XCTAssertEqual(afterOutside["tcp"] as? [String], heldOutside["tcp"] as? [String], "every connection from outside carries on")
        XCTAssertEqual(afterOutside["udp"] as? String, heldOutside["udp"] as? String)
        XCTAssertEqual(afterOnNode["tcp"] as? [String], heldOnNode["tcp"] as? [String], "every connection from the node carries on")
        XCTAssertEqual(afterOnNode["udp"] as? String, heldOnNode["udp"] as? String)
    }
}
