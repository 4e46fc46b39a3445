// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// Runtimes run ADD and DEL of different containers at once; the store and IPAM must hold.
final class ConcurrencyTests: XCTestCase {
    func testTwentyConcurrentAddsAndDels() throws {
        for ipam in [IPAMKind.builtin, .hostLocal] {
            let node = try TestNode(self)
            let count = 20
            let pods = try (0..<count).map { try node.makePod("c\($0)") }
            let config = node.config(ipam: ipam)

            let adds = concurrently(count) { index in
                try node.cni("ADD", containerID: "ctr-\(index)", netns: pods[index], config: config)
            }
            XCTAssertEqual(adds.filter { $0?.status == 0 }.count, count, "\(adds.compactMap { $0?.stdout }.filter { $0.contains("code") })")
            let addresses = adds.compactMap { try? $0?.result().podAddresses }.flatMap { $0 }
            XCTAssertEqual(addresses.count, 2 * count)
            XCTAssertEqual(Set(addresses).count, addresses.count, "every pod got distinct addresses")
            XCTAssertEqual(try node.endpoints().count, count)
            XCTAssertEqual(try node.hostVeths().count, count)

            let dels = concurrently(count) { index in
                try node.cni("DEL", containerID: "ctr-\(index)", netns: pods[index], config: config)
            }
            XCTAssertEqual(dels.filter { $0?.status == 0 }.count, count)
            XCTAssertEqual(try node.hostVeths(), [])
            XCTAssertEqual(try node.endpoints().count, 0)
            XCTAssertEqual(node.hostLocalReservations(), [])
            if ipam == .builtin { XCTAssertEqual(try node.leaseCount(), 0) }
        }
    }

    private func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) throws -> CNIOutcome) -> [CNIOutcome?] {
        let results = Results(count)
        DispatchQueue.concurrentPerform(iterations: count) { index in results.set(index, try? body(index)) }
        return results.values
    }
}

private final class Results: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [CNIOutcome?]
    init(_ count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: CNIOutcome?) { lock.withLock { storage[index] = value } }
    var values: [CNIOutcome?] { lock.withLock { storage } }
}
