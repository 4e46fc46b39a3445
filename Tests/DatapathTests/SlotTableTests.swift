// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
@testable import Datapath
import NetAddress
import NodeStore
import XCTest

/// How a service's backends are laid out in its slots.
final class SlotTableTests: XCTestCase {
    private let service = Service(address: IPAddress("10.96.0.20")!, port: 80, proto: .tcp)
    private func backend(_ last: Int, weight: Int = 1) -> Backend { Backend(address: IPAddress("10.1.0.\(last)")!, port: 8080, weight: weight) }

    func testEachBackendTakesAsManySlotsAsItsWeightInOrder() {
        let table = SlotTable(service, backends: [backend(1, weight: 2), backend(2), backend(3, weight: 3)], external: .none)
        XCTAssertEqual(table.slots.map(\.address.description), ["10.1.0.1", "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.3", "10.1.0.3"])
        XCTAssertEqual(table.clusterSlots, 6)
        XCTAssertEqual(table.externalSlots, 0)
        XCTAssertEqual(table.flags, 0)
    }

    func testLocalBackendsForOutsideClientsFollowTheClustersSlots() {
        let local = backend(9, weight: 2)
        let table = SlotTable(service, backends: [backend(1), local], external: .local([local]))
        XCTAssertEqual(table.slots.map(\.address.description), ["10.1.0.1", "10.1.0.9", "10.1.0.9", "10.1.0.9", "10.1.0.9"])
        XCTAssertEqual(table.clusterSlots, 3)
        XCTAssertEqual(table.externalSlots, 2)
        XCTAssertEqual(table.flags, SP_SERVICE_EXTERNAL | SP_SERVICE_EXTERNAL_LOCAL)
        let entry = table.entry(id: 42, affinitySeconds: 10_800)
        XCTAssertEqual([entry.id, entry.slots, entry.external_slots, entry.affinity_seconds], [42, 3, 2, 10_800])
    }

    func testAnEmptyServiceHasNoSlotsAndALoopbackOneStaysInTheNodesNetns() {
        XCTAssertEqual(SlotTable(service, backends: [], external: .cluster).slots, [])
        XCTAssertEqual(SlotTable(service, backends: [], external: .cluster).flags, SP_SERVICE_EXTERNAL)
        let loopback = Service(address: IPAddress("127.0.0.1")!, port: 80, proto: .tcp)
        XCTAssertEqual(SlotTable(loopback, backends: [backend(1)], external: .none).flags, SP_SERVICE_NODE_NETNS_ONLY)
    }
}
