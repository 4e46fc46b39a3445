// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import Foundation
import NetAddress
import XCTest

/// A runtime may kill the plugin at any moment, and run GC while other ADDs are at work: whatever
/// an interrupted ADD left, DEL and GC remove whole, and GC never touches an ADD still running.
final class CrashRecoveryTests: XCTestCase {
    /// ADDs killed at points spread over an ADD's whole run, each followed by DEL, then one GC:
    /// nothing of any of them is left on the node.
    func testKilledAddsLeaveNothingAfterDelAndGC() throws {
        let node = try TestNode(self)
        let span = try node.timeOneAdd()
        for index in 0..<12 {
            let pod = try node.makePod("k\(index)")
            try node.killAdd("ctr-k\(index)", pod: pod, after: span * Double(index) / 12)
            let del = try node.cni("DEL", containerID: "ctr-k\(index)", netns: pod, config: node.config())
            XCTAssertEqual(del.status, 0, "DEL after a kill: \(del.stdout)")
        }
        try node.collectEverything()
        try node.assertNoResidue()
    }

    /// The same with GC alone: it removes half-made attachments whole (the veth and its routes,
    /// not only the link and the lease), so no address is handed out while a pod still holds it.
    func testKilledAddsLeaveNothingAfterGC() throws {
        for ipam in [IPAMKind.builtin, .hostLocal] {
            let node = try TestNode(self)
            let span = try node.timeOneAdd(ipam: ipam)
            for index in 0..<10 {
                let pod = try node.makePod("g\(index)")
                try node.killAdd("ctr-g\(index)", pod: pod, ipam: ipam, after: span * Double(index + 1) / 11)
            }
            try node.collectEverything(ipam: ipam)
            try node.assertNoResidue()
            XCTAssertEqual(node.hostLocalReservations(), [], "host-local released every address")
        }
    }

    /// The first ADD of a node loads the datapath: killed while it does, the node still recovers,
    /// and the next ADD completes what the killed one started.
    func testKilledFirstAddsLeaveAWorkingNode() throws {
        for index in 0..<6 {
            let node = try TestNode(self)
            let pod = try node.makePod("f\(index)")
            try node.killAdd("ctr-f\(index)", pod: pod, after: 0.004 * Double(index))
            XCTAssertEqual(try node.cni("DEL", containerID: "ctr-f\(index)", netns: pod, config: node.config()).status, 0)
            try node.collectEverything()
            try node.assertNoResidue()
            let next = try node.makePod("n\(index)")
            _ = try node.add("ctr-n\(index)", pod: next)
            let status = try node.cli("datapath", "status", "-o", "json")
            XCTAssertEqual(status["healthy"] as? Bool, true, "\(status)")
        }
    }

    /// An ADD at work holds its claim and has a pending record: GC of its own network, or of
    /// another one, leaves its record and leases alone; once the ADD has died, GC removes them.
    func testGCLeavesAnAddAtWorkAlone() throws {
        let node = try TestNode(self)
        _ = try node.add("ctr-warm", pod: node.makePod("warm"))
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-warm", netns: "", config: node.config()).status, 0)
        // This test process is the ADD at work: it holds the claim, as a running ADD does.
        let store = try EndpointStore.open(root: node.storeRoot)
        var claim: Claim? = try store.claim("spathbusy")
        XCTAssertTrue(try store.insert(.pending(containerID: "ctr-busy", ifname: "eth0", network: node.network, netns: "",
                                                hostName: "spathbusy", addressSource: .builtin, created: 1)))
        XCTAssertTrue(try store.lease(IPAddress("10.123.0.77")!, network: node.network, containerID: "ctr-busy", ifname: "eth0"))
        for network in [node.network, "another-net"] {
            var config = node.config()
            config["name"] = network
            config["cni.dev/valid-attachments"] = [[String: String]]()
            let gc = try node.cni("GC", config: config)
            XCTAssertEqual(gc.status, 0, gc.stdout)
            XCTAssertEqual(try node.endpoints().count, 1, "GC of \(network) kept the ADD at work")
            XCTAssertEqual(try node.leaseCount(), 1, "and its lease")
        }
        XCTAssertNotNil(claim)
        claim = nil   // the ADD dies: its lock goes with its descriptor
        try node.collectEverything()
        try node.assertNoResidue()
    }

    /// GC keeps running while twenty ADDs of listed containers complete: every pod ends up wired,
    /// on the fast path, with addresses of its own.
    func testGCConcurrentWithAdds() throws {
        let node = try TestNode(self)
        let count = 20
        let pods = try (0..<count).map { try node.makePod("c\($0)") }
        var gcConfig = node.config()
        gcConfig["cni.dev/valid-attachments"] = (0..<count).map { ["containerID": "ctr-c\($0)", "ifname": "eth0"] }
        var otherNetwork = node.config()
        otherNetwork["name"] = "another-net"
        otherNetwork["cni.dev/valid-attachments"] = [[String: String]]()
        let outcomes = Outcomes(count)
        let adding = Countdown(count)
        // Two GC loops, one per network, run until the last ADD is done.
        DispatchQueue.concurrentPerform(iterations: count + 2) { index in
            if index >= count {
                while !adding.done { _ = try? node.cni("GC", config: index == count ? gcConfig : otherNetwork) }
                return
            }
            outcomes.set(index, try? node.cni("ADD", containerID: "ctr-c\(index)", netns: pods[index], config: node.config()))
            adding.finishedOne()
        }
        let results = outcomes.values
        XCTAssertEqual(results.filter { $0?.status == 0 }.count, count, "\(results.compactMap { $0?.stdout }.filter { $0.contains("code") })")
        let addresses = results.compactMap { try? $0?.result().podAddresses }.flatMap { $0 }
        XCTAssertEqual(Set(addresses).count, 2 * count, "every pod has addresses of its own")
        XCTAssertEqual(try node.leaseCount(), 2 * count)
        let status = try node.cli("datapath", "status", "-o", "json")
        XCTAssertEqual((status["podAttachments"] as? [String: Int])?["tcx"], count, "every pod kept its link: \(status)")
        XCTAssertEqual((status["endpointAddresses"] as? [String: Int])?["ipv4"], count)
    }
}

extension TestNode {
    /// How long one ADD of a fresh pod takes here (its DEL undoes it).
    func timeOneAdd(ipam: IPAMKind = .builtin) throws -> Double {
        let pod = try makePod("timing")
        _ = try add("ctr-timing", pod: pod, ipam: ipam)
        XCTAssertEqual(try cni("DEL", containerID: "ctr-timing", netns: pod, config: config(ipam: ipam)).status, 0)
        let start = Date()
        _ = try add("ctr-timing", pod: pod, ipam: ipam)
        let span = Date().timeIntervalSince(start)
        XCTAssertEqual(try cni("DEL", containerID: "ctr-timing", netns: pod, config: config(ipam: ipam)).status, 0)
        return span
    }

    /// Starts an ADD as a runtime would, without waiting for it.
    func startAdd(_ containerID: String, pod: String, ipam: IPAMKind = .builtin) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments = ["--net=/run/netns/\(netns)", pluginBinary]
        process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": containerID,
                               "CNI_NETNS": pod, "CNI_IFNAME": "eth0", "CNI_PATH": referencePlugins]
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: config(ipam: ipam)))
        try input.fileHandleForWriting.close()
        return process
    }

    /// An ADD killed with SIGKILL `seconds` after it started (nsenter execs the plugin in place).
    func killAdd(_ containerID: String, pod: String, ipam: IPAMKind = .builtin, after seconds: Double) throws {
        let process = try startAdd(containerID, pod: pod, ipam: ipam)
        Thread.sleep(forTimeInterval: seconds)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// GC with no attachment left valid.
    func collectEverything(ipam: IPAMKind = .builtin) throws {
        var config = config(ipam: ipam)
        config["cni.dev/valid-attachments"] = [[String: String]]()
        let gc = try cni("GC", config: config)
        XCTAssertEqual(gc.status, 0, "GC: \(gc.stdout)")
    }

    func waitFor(_ what: String, _ condition: () throws -> Bool) throws {
        for _ in 0..<200 {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.005)
        }
        XCTFail("timed out waiting for \(what)")
    }

    func cli(_ arguments: String...) throws -> [String: Any] {
        let result = try runProcess(["nsenter", "--net=/run/netns/\(netns)", pluginBinary] + arguments + ["--root", storeRoot])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// Entries of a pinned map of the store, counted with bpftool (not with swiftpath).
    func mapEntries(_ path: String) throws -> Int {
        guard FileManager.default.fileExists(atPath: "\(storeRoot)/\(path)") else { return 0 }
        let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", "\(storeRoot)/\(path)"])
        return (try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [Any])?.count ?? -1
    }

    /// Nothing of any pod is left: no veth, pod route, record, lease, endpoint map entry, counter,
    /// link pin or claim.
    func assertNoResidue(file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try hostVeths(), [], "no veth", file: file, line: line)
        XCTAssertEqual(try endpoints().count, 0, "no record", file: file, line: line)
        XCTAssertEqual(try mapEntries("ip_leases_v1"), 0, "no lease", file: file, line: line)
        for map in ["sp_endpoints4", "sp_endpoints6", "sp_counters"] {
            XCTAssertEqual(try mapEntries("datapath/\(map)"), 0, "no entry in \(map)", file: file, line: line)
        }
        for folder in ["endpoints", "claims"] {
            let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(storeRoot)/\(folder)")) ?? []
            XCTAssertEqual(left, [], "nothing under \(folder)/", file: file, line: line)
        }
        let routes = try exec("ip", "route", "show") + exec("ip", "-6", "route", "show")
        XCTAssertFalse(routes.contains("spath"), "no route to a pod: \(routes)", file: file, line: line)
    }
}

/// Counts the ADDs that finished, for loops that run until all have.
final class Countdown: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: Int
    init(_ count: Int) { remaining = count }
    func finishedOne() { lock.withLock { remaining -= 1 } }
    var done: Bool { lock.withLock { remaining <= 0 } }
}

final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [CNIOutcome?]
    init(_ count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: CNIOutcome?) { lock.withLock { storage[index] = value } }
    var values: [CNIOutcome?] { lock.withLock { storage } }
}
