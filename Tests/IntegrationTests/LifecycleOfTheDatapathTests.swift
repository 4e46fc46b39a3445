// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import BPFTestObjects
import CLibBPF
import Datapath
import Foundation
import Netns
import XCTest

/// The datapath's life on a node: upgraded in place under traffic, living beside other people's
/// programs, unloaded and loaded again, and cleaned up by DEL.
final class LifecycleOfTheDatapathTests: XCTestCase {
    /// Link ids and program ids of every pinned link of the store, read with bpftool (not swiftpath).
    private func links(_ node: TestNode) throws -> [String: (link: Int, program: Int)] {
        var result: [String: (link: Int, program: Int)] = [:]
        let pins = try runProcess(["find", node.storeRoot + "/endpoints", node.storeRoot + "/uplinks", node.storeRoot + "/socketlb",
                                   "-mindepth", "2"]).stdout
        for pin in pins.split(separator: "\n") {
            let info = try shell(["bpftool", "-j", "link", "show", "pinned", String(pin)])
            let object = try JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any] ?? [:]
            result[String(pin)] = (object["id"] as? Int ?? -1, object["prog_id"] as? Int ?? -1)
        }
        return result
    }

    func testUpgradeSwapsProgramsInPlaceWhileTrafficFlows() throws {
        let cluster = try TwoNodes(self)
        let a = try cluster.one.makePod("a"), c = try cluster.two.makePod("c")
        _ = try cluster.one.add("ctr-a", pod: a)
        let target = try XCTUnwrap(cluster.two.add("ctr-c", pod: c).podAddresses.first)
        let before = try links(cluster.one)
        XCTAssertEqual(before.count, 11, "one pod link, one uplink link, nine socket hook links: \(before)")

        // 400 pings 5 ms apart across the nodes; the upgrade lands in the middle of them.
        let ping = Process()
        ping.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        ping.arguments = ["--net=\(a)", "ping", "-q", "-c", "400", "-i", "0.005", "-W", "1", target]
        let output = Pipe()
        ping.standardOutput = output
        try ping.run()
        Thread.sleep(forTimeInterval: 0.6)
        let store = try EndpointStore.open(root: cluster.one.storeRoot)
        _ = try Datapath.open(store: store, object: .datapath_variant)
        ping.waitUntilExit()
        let summary = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(summary.contains(" 0% packet loss"), "no packet lost during the upgrade: \(summary)")

        let after = try links(cluster.one)
        XCTAssertEqual(Set(after.keys), Set(before.keys))
        for (pin, ids) in after {
            XCTAssertEqual(ids.link, before[pin]?.link, "\(pin): the same link, updated in place")
            XCTAssertNotEqual(ids.program, before[pin]?.program, "\(pin): behind it, the new build's program")
        }
        XCTAssertEqual(try Datapath.loadedBuild(storeRoot: cluster.one.storeRoot), BPFObject.datapath_variant.hash)

        // The plugin's own build takes the node back on its next ADD, entries and all.
        let b = try cluster.one.makePod("b")
        let addressB = try XCTUnwrap(cluster.one.add("ctr-b", pod: b).podAddresses.first)
        XCTAssertEqual(try Datapath.loadedBuild(storeRoot: cluster.one.storeRoot), BPFObject.datapath.hash)
        XCTAssertEqual(try cluster.one.inPod(a, "ping", "-c1", "-W2", addressB).status, 0)
        XCTAssertEqual(try cluster.one.inPod(a, "ping", "-c1", "-W2", target).status, 0)
    }

    /// Without `devices`, the uplinks are the devices of the node's default routes: every one the
    /// table holds on the first ADD, a backup among them; later ADDs look up only the route in use
    /// (two lookups, whatever the table holds) and read the table again when that leads elsewhere.
    func testUplinksFollowTheDefaultRoutes() throws {
        let node = try TestNode(self)
        for (device, address) in [("up0", "10.68.0.1/24"), ("up1", "10.69.0.1/24"), ("up2", "10.70.0.1/24")] {
            try node.exec("ip", "link", "add", device, "type", "veth", "peer", "name", device + "p")
            try node.exec("ip", "addr", "add", address, "dev", device)
            try node.exec("ip", "link", "set", device, "mtu", "1400", "up")
        }
        try node.exec("ip", "route", "add", "default", "via", "10.68.0.9", "metric", "10")
        try node.exec("ip", "route", "add", "default", "via", "10.69.0.9", "metric", "20")
        let uplinks = { Set(((try? FileManager.default.contentsOfDirectory(atPath: node.storeRoot + "/uplinks")) ?? [])) }
        let pin = { (device: String) in "if\(try node.ifindex(of: device))" }

        let a = try node.makePod("a")
        _ = try node.add("ctr-a", pod: a)
        XCTAssertEqual(uplinks(), [try pin("up0"), try pin("up1")], "both default routes' devices, the backup's too")
        XCTAssertTrue(try node.inPod(a, "ip", "link", "show", "eth0").stdout.contains("mtu 1400"), "the MTU of the route in use")

        // The default route moves to a device the datapath does not have yet: the next ADD attaches it.
        try node.exec("ip", "route", "del", "default", "metric", "20")
        try node.exec("ip", "route", "replace", "default", "via", "10.70.0.9", "metric", "10")
        let b = try node.makePod("b")
        _ = try node.add("ctr-b", pod: b)
        XCTAssertEqual(uplinks(), [try pin("up0"), try pin("up1"), try pin("up2")])

        // With the route in use leading to an uplink the datapath has, an ADD dumps no routing table.
        let traced = FileManager.default.temporaryDirectory.appendingPathComponent("\(node.prefix)-traced").path
        let trace = traced + ".log"
        defer { try? FileManager.default.removeItem(atPath: traced); try? FileManager.default.removeItem(atPath: trace) }
        try "#!/bin/sh\nexec strace -f -e trace=sendto -o \(trace) \(pluginBinary) \"$@\"\n".write(toFile: traced, atomically: true, encoding: .utf8)
        chmod(traced, 0o755)
        let c = try node.makePod("c")
        XCTAssertEqual(try node.cni("ADD", containerID: "ctr-c", netns: c, config: node.config(), plugin: traced).status, 0)
        let requests = try String(contentsOfFile: trace, encoding: .utf8)
        XCTAssertTrue(requests.contains("RTM_NEWLINK"), "the trace holds the ADD's requests")
        XCTAssertFalse(requests.contains("RTM_GETROUTE, nlmsg_flags=NLM_F_REQUEST|NLM_F_DUMP"), "no routing table read")
        for (id, pod) in [("ctr-a", a), ("ctr-b", b), ("ctr-c", c)] {
            XCTAssertEqual(try node.cni("DEL", containerID: id, netns: pod, config: node.config()).status, 0)
        }
    }

    /// The termination object borrows the LB's pinned maps, keeps its own unpinned, pins nothing,
    /// and refuses (rather than replaces) a pinned map that is not the one it was built against.
    func testTerminationObjectOnlyBorrowsTheDatapathsMaps() throws {
        let node = try TestNode(self)
        _ = try Datapath.open(store: EndpointStore.open(root: node.storeRoot))
        let folder = node.storeRoot + "/datapath"
        let pins = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        XCTAssertTrue(pins.contains("sp_translations"), "\(pins)")
        XCTAssertFalse(pins.contains { $0.hasPrefix("sock_terminate") || $0 == "sp_departures" || $0 == "sp_terminated" },
                       "the host datapath carries no termination program or map: \(pins)")

        let guest = try BPFObjectLoader.load(name: "terminate", bytes: BPFObject.terminate.bytes, mapFolder: folder, pinning: .guest)
        XCTAssertEqual(Set(guest.programs.keys), ["sock_terminate_tcp", "sock_terminate_udp"])
        XCTAssertEqual(Set(guest.privateMaps.keys), ["sp_departures", "sp_terminated"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), pins, "a guest pins nothing")

        // Another build's sp_translations (other sizes) in its place: the guest refuses it and leaves it be.
        let translations = folder + "/sp_translations"
        XCTAssertEqual(unlink(translations), 0)
        _ = try shell(["bpftool", "map", "create", translations, "type", "hash", "key", "4", "value", "4", "entries", "1",
                       "name", "sp_translations"])
        XCTAssertThrowsError(try BPFObjectLoader.load(name: "terminate", bytes: BPFObject.terminate.bytes, mapFolder: folder,
                                                      pinning: .guest)) { error in
            XCTAssertTrue("\(error)".contains("another build"), "\(error)")
        }
        let kept = try shell(["bpftool", "-j", "map", "show", "pinned", translations])
        XCTAssertTrue(kept.contains("\"bytes_key\":4"), "the foreign map is still the one pinned: \(kept)")
    }

    func testAnotherToolsTCXProgramKeepsRunning() throws {
        let cluster = try TwoNodes(self)
        let namespace = try NetworkNamespace.open("/run/netns/\(cluster.one.netns)")
        let wireIndex = try cluster.one.ifindex(of: TwoNodes.wire.one)

        // The other tool: loaded from its own object, its map pinned in a folder of its own,
        // its tcx link held by this process only (no pin in swiftpath's store).
        let folder = cluster.one.storeRoot + "-other"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        addTeardownBlock { _ = try? runProcess(["rm", "-rf", folder]) }
        let loaded = try BPFObjectLoader.load(name: "other_tool", bytes: BPFObject.other_tool.bytes, mapFolder: folder)
        let program = try XCTUnwrap(loaded.programs["other_tool"])
        let link = try namespace.run { () throws(BPFError) in try BPFLink.attachTCX(program, ifindex: wireIndex, direction: .ingress) }.get()
        let seen = try XCTUnwrap(BPFMap.open(at: folder + "/other_seen",
                                             .init(name: "other_seen", type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: 1)))
        func seenCount() throws -> UInt64 { try seen.lookup(UInt32(0), as: UInt64.self) ?? 0 }
        func pingNodeOne() throws {
            XCTAssertEqual(try runProcess(["nsenter", "--net=/run/netns/\(cluster.two.netns)", "ping", "-c3", "-i0.2", "-W1",
                                           TwoNodes.wireAddresses.one.0]).status, 0)
        }

        try pingNodeOne()
        let alone = try seenCount()
        XCTAssertGreaterThanOrEqual(alone, 3, "the other tool runs on its own")

        // swiftpath attaches to the same uplink on the first ADD; both run, in that order.
        let a = try cluster.one.makePod("a"), c = try cluster.two.makePod("c")
        let addressA = try XCTUnwrap(cluster.one.add("ctr-a", pod: a).podAddresses.first)
        _ = try cluster.two.add("ctr-c", pod: c)
        try pingNodeOne()
        XCTAssertEqual(try cluster.two.inPod(c, "ping", "-c3", "-i0.2", "-W1", addressA).status, 0, "pod traffic crosses the shared uplink")
        let beside = try seenCount()
        XCTAssertGreaterThanOrEqual(beside, alone + 6, "the other tool still sees every packet")
        XCTAssertGreaterThan(try cluster.one.stats().packets(role: "uplink", path: "redirect_peer"), 0, "and so does swiftpath")

        // swiftpath goes away; the other tool's link stays attached and keeps counting.
        let unload = try runProcess(["nsenter", "--net=/run/netns/\(cluster.one.netns)", pluginBinary, "datapath", "unload",
                                     "--root", cluster.one.storeRoot])
        XCTAssertEqual(unload.status, 0, unload.stderr)
        try pingNodeOne()
        XCTAssertGreaterThanOrEqual(try seenCount(), beside + 3)
        XCTAssertEqual(link.info.ifindex, UInt32(wireIndex), "never detached by swiftpath")
    }

    func testUnloadThenLoadBringsPodsBack() throws {
        let node = try TestNode(self)
        let a = try node.makePod("a"), b = try node.makePod("b")
        _ = try node.add("ctr-a", pod: a)
        let addressB = try XCTUnwrap(node.add("ctr-b", pod: b).podAddresses.first)
        func cli(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
            try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary] + arguments + ["--root", node.storeRoot])
        }
        // `bpftool -f` names each link's pins: the store's are there before unload, none after.
        XCTAssertTrue(try runProcess(["bpftool", "-f", "link", "show"]).stdout.contains(node.storeRoot))
        XCTAssertEqual(try cli("datapath", "unload").status, 0)
        XCTAssertEqual(try runProcess(["bpftool", "-f", "link", "show"]).stdout.contains(node.storeRoot), false)
        XCTAssertFalse(FileManager.default.fileExists(atPath: node.storeRoot + "/datapath"), "nothing pinned is left")
        XCTAssertEqual(try node.inPod(a, "ping", "-c1", "-W2", addressB).status, 0, "the kernel routes the pods meanwhile")

        let load = try cli("datapath", "load")
        XCTAssertEqual(load.status, 0, load.stderr)
        XCTAssertTrue(load.stdout.contains("re-attached 2 pod(s)"), load.stdout)
        let status = try cli("datapath", "status", "-o", "json")
        let view = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any] ?? [:]
        XCTAssertEqual(view["current"] as? Bool, true)
        XCTAssertEqual((view["podAttachments"] as? [String: Int])?["tcx"], 2)
        let before = try node.stats().packets(role: "endpoint", path: "redirect_peer")
        XCTAssertEqual(try node.inPod(a, "ping", "-c2", "-i0.2", "-W2", addressB).status, 0)
        XCTAssertGreaterThan(try node.stats().packets(role: "endpoint", path: "redirect_peer"), before, "back on the fast path")
    }

    func testDelRemovesLinksAndMapEntries() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("del")
        _ = try node.add("ctr-del", pod: pod)
        func entries(_ map: String) throws -> Int {
            let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", "\(node.storeRoot)/datapath/\(map)"])
            return (try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [Any])?.count ?? -1
        }
        XCTAssertEqual(try entries("sp_endpoints4"), 1)
        XCTAssertEqual(try entries("sp_endpoints6"), 1)
        XCTAssertEqual(try links(node).count, 1 + 9, "the pod's link and the node's socket hooks")
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-del", netns: pod, config: node.config()).status, 0)
        XCTAssertEqual(try entries("sp_endpoints4"), 0)
        XCTAssertEqual(try entries("sp_endpoints6"), 0)
        XCTAssertEqual(try links(node).count, 9, "the node's socket hooks stay; the pod's link is gone")
        XCTAssertEqual(try entries("sp_counters"), 0, "the endpoint's counters went with it")
    }

    func testTCFallbackWhenAskedFor() throws {
        let node = try TestNode(self)
        let a = try node.makePod("a"), b = try node.makePod("b")
        for (pod, id) in [(a, "ctr-a"), (b, "ctr-b")] {
            let outcome = try node.cni("ADD", containerID: id, netns: pod, config: node.config(extra: ["attachMode": "tc"]))
            XCTAssertEqual(outcome.status, 0, outcome.stdout)
        }
        XCTAssertEqual(try node.endpoints().map(\.attachment).filter { $0.hasPrefix("tc prog") }.count, 2)
        let addressB = try XCTUnwrap(node.endpoints().first { $0.containerID == "ctr-b" }?.addresses)
        XCTAssertEqual(try node.inPod(a, "ping", "-c1", "-W2", String(addressB[0].split(separator: "/")[0])).status, 0)
        XCTAssertGreaterThan(try node.stats().packets(role: "endpoint", path: "redirect_peer"), 0)
        var config = node.config()
        config["prevResult"] = ["cniVersion": "1.1.0", "ips": [["address": addressB[0]]]]
        XCTAssertEqual(try node.cni("CHECK", containerID: "ctr-b", netns: b, config: config).status, 0)
        let host = try XCTUnwrap(node.hostVeths().first)
        XCTAssertTrue(try node.exec("tc", "filter", "show", "dev", host, "ingress").contains("direct-action"))

        // An upgrade in place (run in the node's netns, as the plugin and the agent run) swaps the
        // program behind both filters, and the records name it.
        let before = Set(try node.endpoints().map(\.attachment))
        let store = try EndpointStore.open(root: node.storeRoot)
        _ = try node.inNodeNetns { () throws(BPFError) in try Datapath.open(store: store, object: .datapath_variant) }
        let variant = try XCTUnwrap(try BPFProgram.pinned(at: "\(node.storeRoot)/datapath/pod_egress")).id
        XCTAssertEqual(Set(try node.endpoints().map(\.attachment)), ["tc prog \(variant)"], "was \(before)")
        for device in try node.hostVeths() {
            XCTAssertTrue(try node.exec("tc", "filter", "show", "dev", device, "ingress").contains("id \(variant) "), "\(device) runs the new build")
        }
        XCTAssertEqual(try node.inPod(a, "ping", "-c1", "-W2", String(addressB[0].split(separator: "/")[0])).status, 0)
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-a", netns: a, config: node.config()).status, 0)
    }
}
