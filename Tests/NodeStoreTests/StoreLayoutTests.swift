// SPDX-License-Identifier: Apache-2.0
import BPF
@testable import NodeStore
import NetAddress
import XCTest

/// The store's fixed layouts read back what they wrote, and the service spec parser takes what
/// the CLI documents and nothing else.
final class StoreLayoutTests: XCTestCase {
    private func record(state: EndpointRecord.State) -> EndpointRecord {
        EndpointRecord(containerID: String(repeating: "c", count: 127), ifname: "eth0", network: String(repeating: "n", count: 63),
                       netns: "/run/netns/pod", hostIndex: 42, hostName: "spath0123456789", hostMAC: MACAddress("02:00:00:00:00:aa")!,
                       podIndex: 3, podMAC: MACAddress("02:00:00:00:00:0a")!, mtu: 1450,
                       addresses: [.host(IPAddress("10.1.0.5")!), .host(IPAddress("fd00::5")!)], addressSource: .delegated,
                       created: 1_764_000_000_000_000_000, attachMode: 1, attachID: 77, socketCgroupID: 9_000_000_001, state: state)
    }

    func testEndpointRecordsReadBackWhatTheyWrote() {
        for state in [EndpointRecord.State.ready, .pending] {
            let original = record(state: state)
            XCTAssertEqual(original.key.count, EndpointRecord.keySize)
            XCTAssertEqual(original.value.count, EndpointRecord.valueSize)
            XCTAssertEqual(EndpointRecord(key: original.key, value: original.value), original)
        }
    }

    func testRecordsNobodyWroteAreRefused() {
        let original = record(state: .ready)
        XCTAssertNil(EndpointRecord(key: original.key, value: [UInt8](repeating: 0xff, count: EndpointRecord.valueSize)))
        // The state byte follows the socket cgroup id: an unknown state is no record of ours.
        let stateOffset = 64 + 256 + 4 + 16 + 6 + 6 + 4 + 4 + 1 + 1 + EndpointRecord.maxAddresses * 18 + 8 + 1 + 4 + 8
        var unknownState = original.value
        XCTAssertEqual(unknownState[stateOffset], EndpointRecord.State.ready.rawValue)
        unknownState[stateOffset] = 7
        XCTAssertNil(EndpointRecord(key: original.key, value: unknownState))
    }

    func testServiceRecordsChunkAndReadBack() {
        let service = Service("[fd00::10]:53/udp")!
        let key = ServiceRecord.key(service, chunk: 3)
        XCTAssertEqual(key.count, ServiceRecord.keySize)
        XCTAssertEqual(ServiceRecord.service(key: key)?.0, service)
        XCTAssertEqual(ServiceRecord.service(key: key)?.chunk, 3)
        let backends = (1...16).map { Backend(address: IPAddress("fd00::\($0)")!, port: UInt16(8000 + $0), weight: $0) }
        let chunk = ServiceRecord.chunk(backends[...])
        XCTAssertEqual(chunk.count, ServiceRecord.valueSize)
        XCTAssertEqual(ServiceRecord.backends(in: chunk), backends)
    }

    /// A header tells every source (nil) from none ([]) from some; ranges chunk by sixteen.
    func testSourceRangesRecordNoneApartFromEvery() {
        for ranges in [nil, [], [IPPrefix("192.0.2.0/24")!]] as [SourceRanges] {
            let header = ServiceRecord.Header(ServiceRecord.header(count: 1, affinitySeconds: 0, external: .cluster, overHostPort: false,
                                                                   sourceRanges: ranges))
            XCTAssertEqual(header.sourceRangeCount, ranges?.count)
        }
        let ranges = (0..<16).map { IPPrefix("2001:db8:\($0)::/48")! }
        let chunk = ServiceRecord.chunk(ranges[...])
        XCTAssertEqual(chunk.count, ServiceRecord.valueSize)
        XCTAssertEqual(ServiceRecord.sourceRanges(in: chunk), ranges)
    }

    func testServiceAndBackendSpecs() {
        XCTAssertEqual(Service("10.96.0.10:53/udp")?.description, "10.96.0.10:53/udp")
        XCTAssertEqual(Service("[fd00::10]:80/TCP")?.description, "[fd00::10]:80/tcp")
        for bad in ["10.96.0.10:53", "10.96.0.10/udp", "10.96.0.10:0/tcp", "10.96.0.10:70000/tcp", "fd00::10:80/tcp",
                    "[fd00::10]80/tcp", "10.96.0.10:53/sctp", "10.96.0.256:53/udp", "10.96.0.10:53/udp/x"] {
            XCTAssertNil(Service(bad), bad)
        }
        XCTAssertEqual(Backend("10.1.0.5:8080@3")?.weight, 3)
        XCTAssertEqual(Backend("[fd00::5]:8080")?.weight, 1)
        for bad in ["10.1.0.5:8080@0", "10.1.0.5:8080@101", "10.1.0.5:8080@", "10.1.0.5:8080@x", "10.1.0.5", "10.1.0.5:8080@1@2"] {
            XCTAssertNil(Backend(bad), bad)
        }
    }
}
