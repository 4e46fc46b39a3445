// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
import Datapath
import Foundation
import NodeStore
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
}
