// SPDX-License-Identifier: Apache-2.0
import Datapath
import Foundation
import Netlink
import Netns
import NodeStore
import SystemCallSupport
import XCTest

/// With the node agent present, DEL retires the pod's veth instead of deleting it (the kernel's
/// grace periods leave DEL's path) and the agent deletes retired veths as one group. The test
/// holds the agent's lock itself and reaps as the agent does, in the node's netns.
final class RetiredVethTests: XCTestCase {
    private func announceAgent(_ node: TestNode) throws -> AgentPresence { try XCTUnwrap(try node.store().announceAgent()) }

    private func reap(_ node: TestNode, everything: Bool = false) throws -> Int {
        let datapath = try XCTUnwrap(Datapath.openExisting(store: try node.store()))
        return try datapath.handoff.reapRetiredVeths(try node.netlink(), everything: everything)
    }

    /// The devices of the retired group in the node's netns (or a pod's), as `ip` lists them.
    private func retiredDevices(_ node: TestNode, pod: String? = nil) throws -> [String] {
        let argv = ["ip", "-o", "link", "show", "group", "\(RetiredVeths.deviceGroup)"]
        let listing = try pod.map { try node.inPod($0, argv[0], argv[1], argv[2], argv[3], argv[4], argv[5]).stdout } ?? node.exec(argv[0], argv[1], argv[2], argv[3], argv[4], argv[5])
        return listing.split(separator: "\n").map { String($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces).split(separator: "@")[0]) }
    }

    private func retiredLinkPins(_ node: TestNode) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: node.storeRoot + "/retired")) ?? []
    }

    func testDelRetiresTheVethWhileTheAgentRunsAndTheReaperDeletesIt() throws {
        let node = try TestNode(self)
        let podA = try node.makePod("a"), podB = try node.makePod("b")
        _ = try node.add("ctr-a", pod: podA)
        let addressesB = try node.add("ctr-b", pod: podB).podAddresses
        let hostA = try XCTUnwrap(try node.hostVeths().first)
        var presence: AgentPresence? = try announceAgent(node)
        XCTAssertTrue(try node.store().isAgentPresent())

        let del = try node.cni("DEL", containerID: "ctr-a", netns: podA, config: node.config())
        XCTAssertEqual(del.status, 0, del.stdout)
        // Retired, not deleted: both ends down, renamed, in the group; nothing left on them.
        let retired = try retiredDevices(node)
        XCTAssertEqual(retired.count, 1, "the host end retired: \(retired)")
        XCTAssertEqual(try retiredDevices(node, pod: podA), retired, "the pod's end retired under the same name")
        XCTAssertFalse(try node.hostVeths().contains(hostA), "the host end's name is free")
        XCTAssertNotEqual(try node.inPod(podA, "ip", "link", "show", "eth0").status, 0, "the pod's interface name is free")
        for device in retired {
            XCTAssertTrue(try node.exec("ip", "-o", "link", "show", device).contains("state DOWN"))
            for family in ["-4", "-6"] {
                XCTAssertEqual(try node.exec("ip", family, "route", "show", "dev", device), "", "no routes left on \(device)")
                XCTAssertEqual(try node.exec("ip", family, "neigh", "show", "dev", device), "", "no neighbour entries left on \(device)")
                XCTAssertEqual(try node.inPod(podA, "ip", family, "route", "show").stdout, "", "no routes left in the pod")
            }
        }
        XCTAssertEqual(try node.endpoints().count, 1, "only pod b's endpoint is recorded")
        XCTAssertEqual(try node.leaseCount(), 2, "pod a's leases released")
        XCTAssertEqual(retiredLinkPins(node), retired, "the retired veth's link is kept pinned until the device goes")

        // The same attachment added again at once, into the same netns: fresh names, traffic flows.
        let again = try node.add("ctr-a", pod: podA).podAddresses
        XCTAssertEqual(again.count, 2)
        for address in addressesB {
            let ping = try node.inPod(podA, "ping", "-c", "1", "-W", "2", address)
            XCTAssertEqual(ping.status, 0, "the re-added pod reaches \(address): \(ping.stdout)")
        }

        // The reaper deletes the retired veth (both ends) and releases its link.
        XCTAssertEqual(try reap(node), 1)
        XCTAssertEqual(try retiredDevices(node), [])
        XCTAssertEqual(try retiredDevices(node, pod: podA), [])
        XCTAssertEqual(retiredLinkPins(node), [])
        XCTAssertEqual(try node.inPod(podA, "ip", "link", "show", "eth0").status, 0, "the re-added pod keeps its interface")
        XCTAssertEqual(try reap(node), 0, "nothing more to reap")

        // The agent gone: DEL deletes the veth itself, as it does without an agent.
        presence = nil
        XCTAssertFalse(try node.store().isAgentPresent())
        for (id, pod) in [("ctr-a", podA), ("ctr-b", podB)] {
            let gone = try node.cni("DEL", containerID: id, netns: pod, config: node.config())
            XCTAssertEqual(gone.status, 0, gone.stdout)
        }
        XCTAssertEqual(try node.hostVeths(), [])
        XCTAssertEqual(try retiredDevices(node), [])
        XCTAssertEqual(retiredLinkPins(node), [])
        _ = presence
    }

    func testRetiredVethsGoWithTheirNetnsWithGCAndWithUnload() throws {
        let node = try TestNode(self)
        let pods = try (1...3).map { try node.makePod("p\($0)") }
        for (i, pod) in pods.enumerated() { _ = try node.add("ctr-\(i)", pod: pod) }
        var presence: AgentPresence? = try announceAgent(node)
        for (i, pod) in pods.prefix(2).enumerated() {
            XCTAssertEqual(try node.cni("DEL", containerID: "ctr-\(i)", netns: pod, config: node.config()).status, 0)
        }
        XCTAssertEqual(try retiredDevices(node).count, 2)

        // The runtime removes the first pod's netns, as it does after DEL: the kernel deletes that
        // veth with it, and its link is defunct.
        try node.deletePod(pods[0])
        let deadline = Date().addingTimeInterval(10)
        while try retiredDevices(node).count != 1, Date() < deadline { usleep(50_000) }
        XCTAssertEqual(try retiredDevices(node).count, 1, "the veth went with its netns")
        XCTAssertEqual(retiredLinkPins(node).count, 2, "both links still pinned")

        // No agent any more: GC deletes the retired veth left and releases both links.
        presence = nil
        let gc = try node.cni("GC", config: node.config(extra: ["cni.dev/valid-attachments": [["containerID": "ctr-2", "ifname": "eth0"]]]))
        XCTAssertEqual(gc.status, 0, gc.stdout)
        XCTAssertEqual(try retiredDevices(node), [])
        XCTAssertEqual(try retiredDevices(node, pod: pods[1]), [])
        XCTAssertEqual(retiredLinkPins(node), [])
        XCTAssertEqual(try node.hostVeths().count, 1, "the valid attachment stays")

        // `datapath unload` deletes a retired veth too, and leaves no pin.
        presence = try announceAgent(node)
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-2", netns: pods[2], config: node.config()).status, 0)
        XCTAssertEqual(try retiredDevices(node).count, 1)
        let unload = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "unload", "--root", node.storeRoot])
        XCTAssertEqual(unload.status, 0, unload.stderr)
        XCTAssertEqual(try retiredDevices(node), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: node.storeRoot + "/retired"), "no retired pins left")
        _ = presence
    }

    /// A DEL killed after it retired the veth and before it marked it: the reaper's usual pass,
    /// which asks the kernel only when something is marked, does not see it; the DEL the runtime
    /// repeats marks it, and the sweep every so many passes deletes it when nothing does.
    func testAVethRetiredButNotMarkedIsMarkedByTheNextDelAndSweptOtherwise() throws {
        let node = try TestNode(self)
        let podA = try node.makePod("a"), podB = try node.makePod("b")
        _ = try node.add("ctr-a", pod: podA)
        _ = try node.add("ctr-b", pod: podB)
        let presence = try announceAgent(node)
        let records = Dictionary(uniqueKeysWithValues: try node.store().records().map { ($0.containerID, $0) })

        // What the killed DEL did before its kill: both ends down, grouped and renamed.
        func retireAsAKilledDel(_ containerID: String) throws {
            let record = try XCTUnwrap(records[containerID])
            let retiredName = RetiredVeths.name(hostIndex: record.hostIndex)
            let podEnd = try node.inPod(record.netns, "ip", "link", "set", "eth0", "down",
                                        "group", "\(RetiredVeths.deviceGroup)", "name", retiredName)
            XCTAssertEqual(podEnd.status, 0, podEnd.stderr)
            _ = try node.exec("ip", "link", "set", record.hostName, "down", "group", "\(RetiredVeths.deviceGroup)", "name", retiredName)
        }

        try retireAsAKilledDel("ctr-a")
        XCTAssertEqual(try reap(node), 0, "nothing marked")
        XCTAssertEqual(try retiredDevices(node).count, 1, "an unmarked retired veth is not asked for")
        // The runtime repeats the DEL: it finds the retired veth by its name and marks it.
        let del = try node.cni("DEL", containerID: "ctr-a", netns: podA, config: node.config())
        XCTAssertEqual(del.status, 0, del.stdout)
        XCTAssertEqual(try node.endpoints().count, 1)
        XCTAssertEqual(retiredLinkPins(node).count, 1, "marked, with its link")
        XCTAssertEqual(try reap(node), 1)
        XCTAssertEqual(try retiredDevices(node), [])
        XCTAssertEqual(retiredLinkPins(node), [])

        // No DEL again (the pod's record went some other way): only the sweep finds it.
        try retireAsAKilledDel("ctr-b")
        XCTAssertEqual(try reap(node), 0)
        XCTAssertEqual(try retiredDevices(node).count, 1)
        XCTAssertEqual(try reap(node, everything: true), 0, "nothing marked, yet the group deleted")
        XCTAssertEqual(try retiredDevices(node), [])
        XCTAssertEqual(try retiredDevices(node, pod: podB), [])
        withExtendedLifetime(presence) {}
    }
}
