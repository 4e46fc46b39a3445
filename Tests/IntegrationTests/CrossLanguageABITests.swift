// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
import Datapath
import Foundation
import NodeStore
import Netns
import PluginConfig
import CNIProtocol
import XCTest

/// The Python helpers' copy of the ABI (Tests/Fixtures/swiftpath_abi.py, which the chaos suite and
/// the benchmarks read the store with) against the one it copies: the C structs as Swift imports
/// them, the Swift constants, and the paths of a store the Swift code opened.
final class CrossLanguageABITests: XCTestCase {
    private struct PythonABI: Decodable {
        let storePaths: [String: String]
        let retiredGroup: UInt32
        let layouts: [String: [String: Int]]
    }

    private func pythonABI() throws -> PythonABI {
        let fixtures = URL(fileURLWithPath: testScript("")).deletingLastPathComponent().appendingPathComponent("Fixtures").path
        let dumped = try runProcess(["python3", "-c", """
            import json, sys
            sys.path.insert(0, sys.argv[1])
            import swiftpath_abi as abi
            print(json.dumps({"storePaths": abi.STORE_PATHS, "retiredGroup": abi.RETIRED_GROUP, "layouts": abi.LAYOUTS}))
            """, fixtures])
        XCTAssertEqual(dumped.status, 0, dumped.stderr)
        return try JSONDecoder().decode(PythonABI.self, from: Data(dumped.stdout.utf8))
    }

    func testThePythonHelpersLayoutsAreTheCStructs() throws {
        let python = try pythonABI()
        let expected: [String: [String: Int]] = [
            "sp_service_key": ["size": MemoryLayout<sp_service_key>.size, "addr": MemoryLayout<sp_service_key>.offset(of: \.addr)!,
                               "port": MemoryLayout<sp_service_key>.offset(of: \.port)!, "proto": MemoryLayout<sp_service_key>.offset(of: \.proto)!,
                               "family": MemoryLayout<sp_service_key>.offset(of: \.family)!],
            "sp_service": ["size": MemoryLayout<sp_service>.size, "id": MemoryLayout<sp_service>.offset(of: \.id)!,
                           "slots": MemoryLayout<sp_service>.offset(of: \.slots)!],
            "sp_slot_key": ["size": MemoryLayout<sp_slot_key>.size, "id": MemoryLayout<sp_slot_key>.offset(of: \.id)!,
                            "slot": MemoryLayout<sp_slot_key>.offset(of: \.slot)!],
            "sp_backend": ["size": MemoryLayout<sp_backend>.size, "addr": MemoryLayout<sp_backend>.offset(of: \.addr)!,
                           "port": MemoryLayout<sp_backend>.offset(of: \.port)!, "family": MemoryLayout<sp_backend>.offset(of: \.family)!],
        ]
        XCTAssertEqual(python.layouts, expected)
        XCTAssertEqual(python.retiredGroup, RetiredVeths.deviceGroup)
    }

    /// Every path the helpers name is there in a store the plugin's code opened, with its
    /// datapath loaded and the agent announced.
    func testThePythonHelpersStorePathsAreTheStores() throws {
        let node = try TestNode(self)
        let store = try EndpointStore.open(root: node.storeRoot)
        _ = try Datapath.open(store: store)
        let presence = try store.announceAgent()
        XCTAssertNotNil(presence)
        for (name, path) in try pythonABI().storePaths {
            XCTAssertTrue(FileManager.default.fileExists(atPath: node.storeRoot + "/" + path), "\(name): \(path)")
        }
        withExtendedLifetime(presence) {}
    }

    /// The chaos suite's node (chaos/chaos.py) and the Swift tests' (TestNode) build the plugin's
    /// config each in their language: both must say only what the plugin reads, and keep the
    /// plugin inside the suite's own store and cgroup (and chaos off every device: its node netns
    /// has none of its own). A key the plugin renamed would be ignored, and the plugin would fall
    /// back to the node's store, the root cgroup and the default route's device.
    func testTheChaosSuitesAndTheTestsConfigsSayOnlyWhatThePluginReads() throws {
        let chaos = URL(fileURLWithPath: testScript("")).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("chaos").path
        let dumped = try runProcess(["python3", "-c", """
            import json, sys
            sys.path.insert(0, sys.argv[1])
            import chaos
            node = chaos.Node("/bin/true", "spx-abi")
            print(json.dumps([node.config(), node.config(ipam="host-local")]))
            """, chaos])
        XCTAssertEqual(dumped.status, 0, dumped.stderr)
        let chaosConfigs = try JSONCoding.decode([JSONValue].self, from: Array(dumped.stdout.utf8))
        let node = try TestNode(self)
        let testConfigs = try [IPAMKind.builtin, .hostLocal].map { kind in
            try JSONCoding.decode(JSONValue.self, from: Array(JSONSerialization.data(withJSONObject: node.config(ipam: kind))))
        }
        let specKeys: Set<String> = ["cniVersion", "name", "type", "ipam", "dns", "capabilities", "runtimeConfig", "prevResult", "args"]
        let chaosCgroup = try XCTUnwrap(CgroupV2.mountPoint()) + "/spx-abi"
        for (config, store, cgroup, devices) in chaosConfigs.map({ ($0, "/sys/fs/bpf/spx-abi", chaosCgroup, [String]?.some([])) })
            + testConfigs.map({ ($0, node.storeRoot, node.cgroup, node.devices) }) {
            guard case .object(let keys) = config else { return XCTFail("not an object: \(config)") }
            XCTAssertEqual(Set(keys.keys).subtracting(specKeys).subtracting(Set(PluginSettings.Key.allCases.map(\.rawValue))), [], "keys the plugin does not read")
            if case .object(let socketLB)? = keys["socketLB"] {
                XCTAssertEqual(Set(socketLB.keys).subtracting(Set(PluginSettings.SocketLBKey.allCases.map(\.rawValue))), [], "socketLB keys the plugin does not read")
            }
            let (settings, problems) = PluginSettings.parse(keys)
            XCTAssertEqual(problems.map(\.msg), [])
            XCTAssertEqual(settings.storeRoot, store)
            XCTAssertEqual(settings.socketLB.cgroupRoot, cgroup, "the suite's own cgroup, never the root")
            XCTAssertEqual(settings.devices, devices)
        }
    }
}
