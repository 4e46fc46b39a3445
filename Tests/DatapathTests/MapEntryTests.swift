// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
@testable import Datapath
import NetAddress
import NodeStore
import XCTest

/// The datapath's keys and values, filled in and read back without a kernel.
final class MapEntryTests: XCTestCase {
    func testAServiceKeyIsItsFrontendInNetworkOrderAndReadsBack() {
        let web = Service(address: IPAddress("10.96.0.10")!, port: 53, proto: .udp)
        var key = sp_service_key(web)
        XCTAssertEqual(withUnsafeBytes(of: &key.addr) { Array($0) }, [10, 96, 0, 10] + Array(repeating: 0, count: 12),
                       "IPv4 in the first four bytes, the rest zero")
        XCTAssertEqual(key.port, UInt16(53).bigEndian)
        XCTAssertEqual(key.proto, 17)
        XCTAssertEqual(key.family, 4)
        XCTAssertEqual(Service(mapKey: key), web)

        let web6 = Service(address: IPAddress("fd00::a")!, port: 443, proto: .tcp)
        XCTAssertEqual(Service(mapKey: sp_service_key(web6)), web6)
    }

    func testKeysOfAnUnknownProtocolOrFamilyReadAsNothing() {
        var key = sp_service_key(Service(address: IPAddress("10.96.0.10")!, port: 53, proto: .udp))
        key.proto = 132   // SCTP: never programmed
        XCTAssertNil(Service(mapKey: key))
        key.proto = 6
        key.family = 5
        XCTAssertNil(Service(mapKey: key))
    }

    func testABackendReadsBackWithoutItsWeight() {
        let backend = Backend(address: IPAddress("fd00:1::5")!, port: 8080, weight: 7)
        let value = sp_backend(backend)
        XCTAssertEqual(value.port, UInt16(8080).bigEndian)
        XCTAssertEqual(Backend(mapValue: value), Backend(address: backend.address, port: 8080), "the slots carry the weight")
    }

    func testEndpointKeysAreTheAddressBytes() {
        let address = IPAddress("192.0.2.7")!
        XCTAssertEqual(withUnsafeBytes(of: address.ipv4Key) { Array($0) }, [192, 0, 2, 7])
        XCTAssertEqual(IPAddress(ipv4Key: address.ipv4Key), address)
        let address6 = IPAddress("2001:db8::7")!
        XCTAssertEqual(IPAddress(ipv6Key: address6.ipv6Key), address6)
    }
}
