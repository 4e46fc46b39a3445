// SPDX-License-Identifier: Apache-2.0
import BPF
import Datapath
import Foundation
import Netlink
import Netns
import NodeStore
import SystemCallSupport
import XCTest

/// With the node agent present, ADD attaches the pod program with tc (no grace period on ADD's
/// path) and asks the agent to move the pod to its tcx link. The test holds the agent's lock
/// itself and promotes as the agent does.
final class PromotionTests: XCTestCase {
    /// The agent's pass, in the node's netns (where the agent runs), as the agent makes it.
    private func promote(_ node: TestNode) throws -> [String] {
        let datapath = try XCTUnwrap(Datapath.openExisting(store: try node.store()))
        return try node.inNodeNetns { () throws(BPFError) in try datapath.handoff.promotePods(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot)) }
    }

    private func attachment(_ node: TestNode, _ containerID: String) throws -> String {
        let endpoint = try XCTUnwrap(try node.endpoints().first { $0.containerID == containerID })
        return endpoint.attachment
    }

    private func tcFilters(_ node: TestNode, _ device: String) throws -> String {
        try node.exec("tc", "filter", "show", "dev", device, "ingress")
    }

    private func linkPins(_ node: TestNode, _ device: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "\(node.storeRoot)/endpoints/\(device)")) ?? []
    }

    private func ping(_ node: TestNode, from pod: String, _ addresses: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        for address in addresses {
            let result = try node.inPod(pod, "ping", "-c", "1", "-W", "2", address)
            XCTAssertEqual(result.status, 0, "\(pod) reaches \(address): \(result.stdout)", file: file, line: line)
        }
    }

    func testAddStartsThePodOnTcAndThePromotionMovesItToTcx() throws {
        let node = try TestNode(self)
        let podA = try node.makePod("a"), podB = try node.makePod("b")
        _ = try node.add("ctr-a", pod: podA)
        XCTAssertTrue(try attachment(node, "ctr-a").hasPrefix("tcx link"), "without the agent, ADD attaches tcx itself")
        XCTAssertEqual(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot), [])

        let presence = try XCTUnwrap(try node.store().announceAgent())
        let addedB = try node.add("ctr-b", pod: podB)
        let hostB = try XCTUnwrap(try node.store().records().first { $0.containerID == "ctr-b" }).hostName
        XCTAssertTrue(try attachment(node, "ctr-b").hasPrefix("tc prog"), "with the agent, ADD attaches tc")
        XCTAssertTrue(try tcFilters(node, hostB).contains("direct-action"), "the pod's filter")
        XCTAssertEqual(linkPins(node, hostB), [])
        XCTAssertEqual(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot), [hostB])
        let addressesA = try XCTUnwrap(try node.endpoints().first { $0.containerID == "ctr-a" }?.addresses)
            .map { String($0.split(separator: "/")[0]) }
        try ping(node, from: podB, addressesA)
        let check = try node.cni("CHECK", containerID: "ctr-b", netns: podB, config: node.config().merging(["prevResult": addedB.printed]) { $1 })
        XCTAssertEqual(check.status, 0, "CHECK of a pod on tc: \(check.stdout)")

        // The agent's pass: a tcx link pinned, the record says so, the filter gone, the request too.
        XCTAssertEqual(try promote(node), [hostB])
        XCTAssertTrue(try attachment(node, "ctr-b").hasPrefix("tcx link"))
        XCTAssertEqual(linkPins(node, hostB), ["pod_egress"])
        XCTAssertFalse(try tcFilters(node, hostB).contains("direct-action"), "the filter is gone")
        XCTAssertEqual(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(node.storeRoot)/claims/\(hostB)"), "the agent's claim is dropped")
        try ping(node, from: podB, addressesA)
        let recheck = try node.cni("CHECK", containerID: "ctr-b", netns: podB, config: node.config().merging(["prevResult": addedB.printed]) { $1 })
        XCTAssertEqual(recheck.status, 0, "CHECK of the promoted pod: \(recheck.stdout)")
        XCTAssertEqual(try promote(node), [], "nothing more to promote")

        for (id, pod) in [("ctr-a", podA), ("ctr-b", podB)] {
            XCTAssertEqual(try node.cni("DEL", containerID: id, netns: pod, config: node.config()).status, 0)
        }
        withExtendedLifetime(presence) {}
    }

    func testARequestWhosePodWentOrIsBeingDeletedIsDroppedAndTcStaysWhereAsked() throws {
        let node = try TestNode(self)
        let pods = try (1...3).map { try node.makePod("p\($0)") }
        let presence = try XCTUnwrap(try EndpointStore.open(root: node.storeRoot).announceAgent(), "the agent makes the store")
        for (i, pod) in pods.prefix(2).enumerated() { _ = try node.add("ctr-\(i)", pod: pod) }
        let hosts = try node.store().records().sorted { $0.containerID < $1.containerID }.map(\.hostName)
        XCTAssertEqual(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot), hosts.sorted())

        // Pod 0 is deleted before the agent comes round: its request goes with it.
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-0", netns: pods[0], config: node.config()).status, 0)
        XCTAssertEqual(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot), [hosts[1]])
        // Outside the node's netns, the pod's device index names another device, or none: nothing is attached.
        let datapath = try XCTUnwrap(Datapath.openExisting(store: try node.store()))
        XCTAssertEqual(try datapath.handoff.promotePods([hosts[1]]), [])
        XCTAssertTrue(try attachment(node, "ctr-1").hasPrefix("tc prog"))
        try datapath.handoff.requestPromotion(hostName: hosts[1])
        // A DEL of pod 1 at work holds its claim: the agent leaves the pod alone, on tc.
        let claim = try node.store().claim(hosts[1])
        XCTAssertEqual(try promote(node), [])
        XCTAssertTrue(try attachment(node, "ctr-1").hasPrefix("tc prog"))
        XCTAssertEqual(linkPins(node, hosts[1]), [])
        XCTAssertEqual(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot), [], "the request is dropped")
        try node.store().dropClaim(hosts[1])
        withExtendedLifetime(claim) {}

        // `attachMode: tc` asked for: ADD keeps to it and asks for nothing.
        let add = try node.cni("ADD", containerID: "ctr-2", netns: pods[2], config: node.config().merging(["attachMode": "tc"]) { $1 })
        XCTAssertEqual(add.status, 0, add.stdout)
        XCTAssertTrue(try attachment(node, "ctr-2").hasPrefix("tc prog"))
        XCTAssertEqual(AgentHandoff.requestedPromotions(storeRoot: node.storeRoot), [])

        for (i, pod) in pods.enumerated().dropFirst() {
            XCTAssertEqual(try node.cni("DEL", containerID: "ctr-\(i)", netns: pod, config: node.config()).status, 0)
        }
        XCTAssertEqual(try node.hostVeths().filter { !$0.hasPrefix("spr") }, [], "every veth retired")
        XCTAssertEqual(linkPins(node, hosts[1]), [])
        XCTAssertEqual((try? FileManager.default.contentsOfDirectory(atPath: "\(node.storeRoot)/claims")) ?? [], [], "no claim left")
        withExtendedLifetime(presence) {}
    }

    /// The agent's moves racing ADDs and DELs of pods that live a few milliseconds: every ADD and
    /// DEL succeeds, moves happen, and nothing is left behind: no link, filter, request, claim,
    /// record or lease.
    func testMovesRacingAddsAndDelsLeaveNothing() throws {
        let node = try TestNode(self)
        let presence = try XCTUnwrap(try EndpointStore.open(root: node.storeRoot).announceAgent())
        let workers = 6, rounds = 8
        let pods = try (0..<workers).map { try node.makePod("r\($0)") }
        let mover = Mover(storeRoot: node.storeRoot, netns: "/run/netns/\(node.netns)")
        mover.start()
        let outcomes = RaceOutcomes()
        DispatchQueue.concurrentPerform(iterations: workers) { [node] worker in
            for round in 0..<rounds {
                let id = "ctr-r\(worker)x\(round)"
                outcomes.add(try? node.cni("ADD", containerID: id, netns: pods[worker], config: node.config()))
                usleep(useconds_t.random(in: 0...15_000))
                outcomes.add(try? node.cni("DEL", containerID: id, netns: pods[worker], config: node.config()))
            }
        }
        let moved = mover.stop()
        XCTAssertEqual(outcomes.failures, [], "every ADD and DEL succeeds")
        XCTAssertEqual(outcomes.count, 2 * workers * rounds)
        XCTAssertGreaterThan(moved, 0, "pods were moved while others came and went")

        XCTAssertEqual(try node.endpoints().count, 0)
        XCTAssertEqual(try node.leaseCount(), 0)
        for folder in ["endpoints", "claims", "promotions"] {
            let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(node.storeRoot)/\(folder)")) ?? []
            XCTAssertEqual(left, [], "nothing left in \(folder)/")
        }
        XCTAssertEqual(try node.hostVeths().filter { !$0.hasPrefix("spr") }, [], "every veth retired")
        let datapath = try XCTUnwrap(Datapath.openExisting(store: try node.store()))
        try datapath.handoff.reapRetiredVeths(try node.netlink())
        XCTAssertEqual(try node.hostVeths(), [])
        withExtendedLifetime(presence) {}
    }
}

/// The agent's mover, on a thread of its own in the node's netns, as fast as it can go.
private final class Mover: @unchecked Sendable {
    private let storeRoot: String, netns: String
    private let lock = NSLock()
    private var stopping = false, moved = 0
    private let done = DispatchSemaphore(value: 0)

    init(storeRoot: String, netns: String) { (self.storeRoot, self.netns) = (storeRoot, netns) }

    func start() {
        Thread.detachNewThread { [self] in
            _ = try? NetworkNamespace.open(netns).run { () throws(BPFError) in
                var datapath: Datapath?
                while !lock.withLock({ stopping }) {
                    if datapath == nil, let store = try EndpointStore.openExisting(root: storeRoot) { datapath = Datapath.openExisting(store: store) }
                    let count = (try datapath?.handoff.promotePods(AgentHandoff.requestedPromotions(storeRoot: storeRoot)))?.count ?? 0
                    lock.withLock { moved += count }
                    usleep(1_000)
                }
            }
            done.signal()
        }
    }

    /// Stops it, once it has looked a last time; returns how many pods it moved.
    func stop() -> Int {
        lock.withLock { stopping = true }
        done.wait()
        return lock.withLock { moved }
    }
}

private final class RaceOutcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var all: [CNIOutcome?] = []
    func add(_ outcome: CNIOutcome?) { lock.withLock { all.append(outcome) } }
    var count: Int { lock.withLock { all.count } }
    var failures: [String] { lock.withLock { all.filter { $0?.status != 0 }.map { $0?.stdout ?? "did not run" } } }
}
