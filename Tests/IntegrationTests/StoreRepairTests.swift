// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import BPFTestObjects
import CDatapathABI
import CLibBPF
import Datapath
import Foundation
import NetAddress
import XCTest

/// A damaged store never bricks the node: DEL still removes what it can, status names what is
/// broken, and `datapath load` (or, for a missing pin, the next ADD) repairs it. Services survive
/// a datapath whose service maps change layout, concurrent changes leak nothing, and an older
/// binary never takes a node back to its older datapath unasked.
final class StoreRepairTests: XCTestCase {
    private func folder(_ node: TestNode) -> String { node.storeRoot + "/datapath" }

    /// What `datapath status` says is broken.
    private func problems(_ node: TestNode) throws -> [String] {
        try node.cli("datapath", "status", "-o", "json")["problems"] as? [String] ?? ["status unreadable"]
    }

    func testMissingOrForeignPinsAreReportedAndRepaired() throws {
        let node = try TestNode(self)
        let a = try node.makePod("a"), b = try node.makePod("b")
        _ = try node.add("ctr-a", pod: a)
        let addressB = try XCTUnwrap(node.add("ctr-b", pod: b).podAddresses.first)
        let damages: [(String, () throws -> Void)] = [
            ("sp_endpoints4", { unlink(self.folder(node) + "/sp_endpoints4") }),
            ("pod_egress", { unlink(self.folder(node) + "/pod_egress") }),
            ("sp_counters", { unlink(self.folder(node) + "/sp_counters") }),
            ("sp_endpoints6", {
                unlink(self.folder(node) + "/sp_endpoints6")
                try shell(["bpftool", "map", "create", self.folder(node) + "/sp_endpoints6", "type", "hash", "key", "4", "value", "4",
                           "entries", "1", "name", "sp_endpoints6"])
            }),
        ]
        for (pin, damage) in damages {
            try damage()
            let reported = try problems(node)
            XCTAssertTrue(reported.contains { $0.contains(pin) }, "status names \(pin): \(reported)")
            let load = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "load", "--root", node.storeRoot])
            XCTAssertEqual(load.status, 0, "load repairs \(pin): \(load.stderr)")
            XCTAssertEqual(try problems(node), [], "nothing broken after load")
            XCTAssertEqual(try node.inPod(a, "ping", "-c1", "-W2", addressB).status, 0, "pods talk after \(pin) was repaired")
            XCTAssertEqual(try node.mapEntries("datapath/sp_endpoints4"), 2, "the endpoint maps were refilled from the records")
            XCTAssertEqual(try node.mapEntries("datapath/sp_endpoints6"), 2)
        }
    }

    /// With a pin missing, DEL removes everything else and succeeds, and the next ADD repairs the pin.
    func testDelAndAddWithAPinMissing() throws {
        let node = try TestNode(self)
        let a = try node.makePod("a"), b = try node.makePod("b")
        _ = try node.add("ctr-a", pod: a)
        for pin in ["sp_endpoints4", "sp_counters", "pod_egress"] { unlink(folder(node) + "/" + pin) }
        let del = try node.cni("DEL", containerID: "ctr-a", netns: a, config: node.config())
        XCTAssertEqual(del.status, 0, del.stdout)
        XCTAssertEqual(try node.hostVeths(), [])
        XCTAssertEqual(try node.endpoints().count, 0)
        XCTAssertEqual(try node.mapEntries("ip_leases_v1"), 0)
        _ = try node.add("ctr-b", pod: b)
        XCTAssertEqual(try problems(node), [], "the ADD repaired the missing pins")
        XCTAssertEqual(try node.mapEntries("datapath/sp_endpoints4"), 1)
    }

    /// Unreadable records are named by status and removed by load; unload works on a damaged store.
    func testGarbageRecordsAndUnloadOfADamagedStore() throws {
        let node = try TestNode(self)
        _ = try node.add("ctr-a", pod: node.makePod("a"))
        let key = [String](repeating: "0x41", count: 144), value = [String](repeating: "0xff", count: 512)
        try shell(["bpftool", "map", "update", "pinned", node.storeRoot + "/endpoints_v1", "key"] + key + ["value"] + value)
        let reported = try problems(node)
        XCTAssertTrue(reported.contains { $0.contains("cannot be read") }, "\(reported)")
        let load = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "load", "--root", node.storeRoot])
        XCTAssertEqual(load.status, 0, load.stderr)
        XCTAssertTrue(load.stdout.contains("removed 1 unreadable"), load.stdout)
        XCTAssertEqual(try problems(node), [])

        for pin in ["sp_meta", "sp_uplinks", "uplink_ingress"] { unlink(folder(node) + "/" + pin) }
        let unload = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "unload", "--root", node.storeRoot])
        XCTAssertEqual(unload.status, 0, unload.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder(node)), "unload removed every pin")
    }

    /// Endpoint map entries no record accounts for (a record lost, a map refilled from another
    /// store) are removed by GC; the entries of recorded pods, of any network, stay.
    func testGCForgetsEndpointEntriesNoRecordAccountsFor() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("a")
        let added = try node.add("ctr-a", pod: pod).podAddresses
        let datapath = try XCTUnwrap(Datapath.openExisting(store: node.store()))
        let strays = [IPAddress("10.123.0.77")!, IPAddress("fd00:123::77")!]
        try datapath.pods.addEndpoint(addresses: strays, hostIndex: 9999, podMAC: MACAddress("02:00:00:00:00:77")!, hostMAC: .zero)
        let hostIndex = try XCTUnwrap(datapath.pods.endpoint(IPAddress(added[0])!)).hostIndex
        XCTAssertEqual(try node.mapEntries("datapath/sp_pod_devices"), 2)

        var config = node.config()
        config["cni.dev/valid-attachments"] = [["containerID": "ctr-a", "ifname": "eth0"]]
        XCTAssertEqual(try node.cni("GC", config: config).status, 0)
        for stray in strays { XCTAssertNil(try datapath.pods.endpoint(stray), "\(stray)") }
        XCTAssertEqual(try node.mapEntries("datapath/sp_pod_devices"), 1, "the recorded pod's device stays")
        for address in added { XCTAssertEqual(try datapath.pods.endpoint(IPAddress(address)!)?.hostIndex, hostIndex, address) }
    }

    /// The connection tables take the size the first load gives them (from the node's memory, or
    /// `--connection-table-entries`), keep it across loads, and status takes either size as theirs.
    func testConnectionTablesAreSizedOnceFromMemoryOrTheOperator() throws {
        XCTAssertEqual(ConnectionTableSize.fromMemory(bytes: 24 << 30).confirmed, 262_144)
        XCTAssertEqual(ConnectionTableSize.fromMemory(bytes: 1 << 30).confirmed, ConnectionTableSize.smallest)
        XCTAssertEqual(ConnectionTableSize.fromMemory(bytes: 1 << 41).confirmed, ConnectionTableSize.largest)

        let node = try TestNode(self)
        func load(_ arguments: String...) throws {
            let result = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "load", "--root", node.storeRoot]
                                        + arguments)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        func entries(_ map: String) throws -> Int {
            let shown = try shell(["bpftool", "-j", "map", "show", "pinned", "\(folder(node))/\(map)"])
            return (try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any])?["max_entries"] as? Int ?? -1
        }
        try load("--connection-table-entries", "70000")
        XCTAssertEqual(try entries("sp_nat"), 70_000)
        XCTAssertEqual(try entries("sp_nat_new"), 35_000)
        try load()
        XCTAssertEqual(try entries("sp_nat"), 70_000, "a pinned table keeps its size")
        XCTAssertEqual(try problems(node), [])

        for map in ["sp_nat", "sp_nat_new"] { unlink("\(folder(node))/\(map)") }
        try load()
        XCTAssertEqual(try entries("sp_nat"), Int(ConnectionTableSize.fromMemory().confirmed), "made anew: from the node's memory")
        XCTAssertEqual(try problems(node), [])
    }

    /// A record that names another device (here a veth of the node's own) makes DEL remove the
    /// pod's veth, never that device.
    func testDelRemovesOnlyItsOwnVeth() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("a")
        _ = try node.add("ctr-a", pod: pod)
        try node.exec("ip", "link", "add", "victim0", "type", "veth", "peer", "name", "victim1")
        let store = try EndpointStore.open(root: node.storeRoot)
        var record = try XCTUnwrap(store.record(containerID: "ctr-a", ifname: "eth0"))
        record.hostIndex = try node.ifindex(of: "victim0")
        record.hostName = "victim0"
        try store.update(record)
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-a", netns: pod, config: node.config()).status, 0)
        XCTAssertEqual(try node.hostVeths().sorted(), ["victim0", "victim1"], "only the pod's veth went")
    }

    /// Services are the store's records: a datapath whose service maps change layout gets them back.
    func testServicesSurviveALayoutChangingUpgrade() throws {
        let node = try TestNode(self)
        _ = try node.add("ctr-a", pod: node.makePod("a"))
        try node.cliText("service", "set", "10.96.0.10:53/udp", "10.123.0.5:53", "10.123.0.6:53@3", "--affinity", "30")
        try node.cliText("service", "set", "[fd00:96::1]:80/tcp", "[fd00:123::5]:8080")
        let before = try node.cliText("service", "list")
        let store = try EndpointStore.open(root: node.storeRoot)
        _ = try Datapath.open(store: store, object: .datapath_small_lb)
        XCTAssertEqual(try node.cliText("service", "list"), before, "the smaller service maps were refilled")
        XCTAssertEqual(try node.mapEntries("datapath/sp_slots"), 5)
        // And back to this build (its service maps change layout again) on the next ADD.
        _ = try node.add("ctr-b", pod: node.makePod("b"))
        XCTAssertEqual(try Datapath.loadedBuild(storeRoot: node.storeRoot), BPFObject.datapath.hash)
        XCTAssertEqual(try node.cliText("service", "list"), before)
        XCTAssertEqual(try node.mapEntries("datapath/sp_slots"), 5)
    }

    /// Concurrent changes of one service end with its last set's slots and no others.
    func testConcurrentServiceChangesLeakNoSlot() throws {
        let node = try TestNode(self)
        _ = try node.add("ctr-a", pod: node.makePod("a"))
        DispatchQueue.concurrentPerform(iterations: 32) { index in
            let backends = (0..<(8 + index % 8)).map { "10.123.0.\(10 + $0):80@3" }
            _ = try? runProcess([pluginBinary, "service", "set", "10.96.0.20:80/tcp"] + backends + ["--root", node.storeRoot])
        }
        let services = try runProcess([pluginBinary, "service", "list", "-o", "json", "--root", node.storeRoot]).stdout
        let list = try JSONSerialization.jsonObject(with: Data(services.utf8)) as? [[String: Any]] ?? []
        XCTAssertEqual(list.count, 1)
        let slots = 3 * ((list.first?["backends"] as? [String])?.count ?? 0)
        XCTAssertEqual(try node.mapEntries("datapath/sp_slots"), slots, "every slot belongs to the service: \(list)")
    }

    /// A store written under another layout version gets every map anew, even maps whose sizes
    /// did not change, and its endpoints and services back from the records.
    func testAnotherLayoutVersionRebuildsEveryMap() throws {
        let node = try TestNode(self)
        let a = try node.makePod("a"), b = try node.makePod("b")
        _ = try node.add("ctr-a", pod: a)
        let addressB = try XCTUnwrap(node.add("ctr-b", pod: b).podAddresses.first)
        try node.cliText("service", "set", "10.96.0.10:80/tcp", "\(addressB):8080")
        try node.cliText("service", "set", "198.51.100.40:80/tcp", "\(addressB):8080", "--external", "--source-range", "192.0.2.0/24")
        func mapIDs() throws -> [String: Int] {
            var ids: [String: Int] = [:]
            for name in ["sp_endpoints4", "sp_endpoints6", "sp_counters", "sp_services", "sp_lb", "sp_source_ranges"] {
                let shown = try shell(["bpftool", "-j", "map", "show", "pinned", folder(node) + "/" + name])
                ids[name] = (try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any])?["id"] as? Int
            }
            return ids
        }
        let before = try mapIDs()
        var meta = try XCTUnwrap(Datapath.loadedMeta(storeRoot: node.storeRoot))
        meta.layout_version = 0
        try XCTUnwrap(BPFMap.open(at: folder(node) + "/sp_meta", .init(name: "sp_meta", type: BPF_MAP_TYPE_ARRAY, keySize: 4,
                                                                        valueSize: MemoryLayout.size(ofValue: meta), maxEntries: 1)))
            .upsert(UInt32(0), meta)
        let load = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "load", "--root", node.storeRoot])
        XCTAssertEqual(load.status, 0, load.stderr)
        let after = try mapIDs()
        for (name, id) in before { XCTAssertNotEqual(after[name], id, "\(name) was made anew") }
        XCTAssertEqual(try Datapath.loadedMeta(storeRoot: node.storeRoot)?.layout_version, UInt32(SP_LAYOUT_VERSION))
        XCTAssertEqual(try node.mapEntries("datapath/sp_endpoints4"), 2)
        XCTAssertEqual(try node.cliText("service", "list").contains(addressB), true)
        XCTAssertEqual(try node.cliText("service", "list").contains("(sources: 192.0.2.0/24)"), true, "the source ranges came back too")
        XCTAssertEqual(try node.mapEntries("datapath/sp_source_ranges"), 2, "the range and the frontend's refusal of the rest")
        XCTAssertEqual(try node.inPod(a, "ping", "-c1", "-W2", addressB).status, 0)

        // The trie alone made anew (its pin gone): refilled too, not left refusing everyone.
        XCTAssertEqual(unlink(folder(node) + "/sp_source_ranges"), 0)
        let reload = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "load", "--root", node.storeRoot])
        XCTAssertEqual(reload.status, 0, reload.stderr)
        XCTAssertEqual(try node.mapEntries("datapath/sp_source_ranges"), 2)
        XCTAssertEqual(try node.cliText("service", "list").contains("(sources: 192.0.2.0/24)"), true)
    }

    /// A store loaded by a newer release is not taken back by this (older) binary: load refuses
    /// unless told, and ADD keeps using the newer datapath as it is.
    func testOlderBinaryNeverDowngradesSilently() throws {
        let node = try TestNode(self)
        _ = try node.add("ctr-a", pod: node.makePod("a"))
        let store = try EndpointStore.open(root: node.storeRoot)
        var meta = try XCTUnwrap(Datapath.loadedMeta(storeRoot: node.storeRoot))
        meta.object_hash ^= 1
        meta.release = Release(major: 99, minor: 0, patch: 0).packed
        try XCTUnwrap(BPFMap.open(at: folder(node) + "/sp_meta", .init(name: "sp_meta", type: BPF_MAP_TYPE_ARRAY, keySize: 4,
                                                                        valueSize: MemoryLayout.size(ofValue: meta), maxEntries: 1)))
            .upsert(UInt32(0), meta)
        let program = try node.cli("datapath", "status", "-o", "json")["programs"] as? [[String: Any]]

        let load = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "load", "--root", node.storeRoot])
        XCTAssertNotEqual(load.status, 0)
        XCTAssertTrue(load.stderr.contains("99.0.0"), load.stderr)
        _ = try node.add("ctr-b", pod: node.makePod("b"))
        XCTAssertEqual(try Datapath.loadedMeta(storeRoot: node.storeRoot)?.release, meta.release, "the newer datapath stayed")
        XCTAssertEqual((try node.cli("datapath", "status", "-o", "json")["programs"] as? [[String: Any]])?.map { $0["id"] as? Int },
                       program?.map { $0["id"] as? Int }, "same programs")
        _ = store

        let forced = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "load", "--allow-downgrade",
                                     "--root", node.storeRoot])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertEqual(try Datapath.loadedBuild(storeRoot: node.storeRoot), BPFObject.datapath.hash)
    }
}

extension TestNode {
    @discardableResult
    func cliText(_ arguments: String...) throws -> String {
        let result = try runProcess(["nsenter", "--net=/run/netns/\(netns)", pluginBinary] + arguments + ["--root", storeRoot])
        XCTAssertEqual(result.status, 0, result.stderr)
        return result.stdout
    }
}
