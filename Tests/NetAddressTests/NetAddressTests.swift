// SPDX-License-Identifier: Apache-2.0
import NetAddress
import XCTest

final class NetAddressTests: XCTestCase {
    func testParsesAndPrintsBothFamilies() {
        XCTAssertEqual(IPAddress("10.1.2.3")?.description, "10.1.2.3")
        XCTAssertEqual(IPAddress("10.1.2.3")?.family, .v4)
        XCTAssertEqual(IPAddress("FD00:0::0010")?.description, "fd00::10")
        XCTAssertEqual(IPAddress("::ffff:10.0.0.1")?.family, .v6)
        XCTAssertEqual(IPAddress("10.1.2.3")?.bytes, [10, 1, 2, 3])
        XCTAssertEqual(IPAddress(bytes: [192, 0, 2, 1]), IPAddress("192.0.2.1"))
        for bad in ["", "10.1.2", "10.1.2.256", "1.2.3.4.5", "fd00:::1", "hello", " 10.0.0.1"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
    }

    func testOrderingAndArithmetic() throws {
        let a = try XCTUnwrap(IPAddress("10.0.0.255"))
        XCTAssertEqual(a.advanced(by: 1)?.description, "10.0.1.0")
        XCTAssertNil(IPAddress("255.255.255.255")?.advanced(by: 1), "IPv4 does not spill into a wider space")
        XCTAssertEqual(IPAddress("fd00::ffff")?.advanced(by: 1)?.description, "fd00::1:0")
        XCTAssertLessThan(try XCTUnwrap(IPAddress("10.0.0.2")), try XCTUnwrap(IPAddress("10.0.0.10")))
        XCTAssertLessThan(try XCTUnwrap(IPAddress("255.255.255.255")), try XCTUnwrap(IPAddress("::")), "IPv4 sorts first")
    }

    func testLoopbackAddresses() {
        for text in ["127.0.0.1", "127.255.0.9", "::1"] { XCTAssertTrue(IPAddress(text)!.isLoopback, text) }
        for text in ["128.0.0.1", "10.127.0.1", "::", "::2", "::ffff:127.0.0.1", "fe80::1"] { XCTAssertFalse(IPAddress(text)!.isLoopback, text) }
    }

    func testPrefixes() throws {
        let prefix = try XCTUnwrap(IPPrefix("10.1.2.77/24"))
        XCTAssertEqual(prefix.network.description, "10.1.2.0")
        XCTAssertEqual(prefix.last.description, "10.1.2.255")
        XCTAssertEqual(prefix.description, "10.1.2.77/24")
        XCTAssertTrue(prefix.contains(try XCTUnwrap(IPAddress("10.1.2.200"))))
        XCTAssertFalse(prefix.contains(try XCTUnwrap(IPAddress("10.1.3.1"))))
        XCTAssertFalse(prefix.contains(try XCTUnwrap(IPAddress("::a01:201"))))
        XCTAssertEqual(IPPrefix("fd00:1::5/64")?.network.description, "fd00:1::")
        XCTAssertEqual(IPPrefix("0.0.0.0/0")?.span, 0xffff_ffff)
        XCTAssertEqual(IPPrefix("::/0")?.span, UInt128.max)
        XCTAssertEqual(IPPrefix.host(try XCTUnwrap(IPAddress("fd00::1"))).length, 128)
        for bad in ["10.0.0.0/33", "10.0.0.0", "10.0.0.0/", "fd00::/129", "10.0.0.0/-1", "10.0.0.0/+8"] {
            XCTAssertNil(IPPrefix(bad), bad)
        }
    }

    func testMACAddresses() {
        XCTAssertEqual(MACAddress("0A:1b:2c:3d:4e:5f")?.description, "0a:1b:2c:3d:4e:5f")
        XCTAssertNil(MACAddress("0a:1b:2c:3d:4e"))
        XCTAssertNil(MACAddress("0a:1b:2c:3d:4e:5g"))
        XCTAssertNil(MACAddress("0a:1b:2c:3d:4e:5f5"))
    }

    func testCodableAsStrings() throws {
        let encoded = try JSONEncoder().encode([IPPrefix("10.0.0.1/32")!])
        XCTAssertEqual(String(decoding: encoded, as: UTF8.self), #"["10.0.0.1\/32"]"#)
        XCTAssertThrowsError(try JSONDecoder().decode([IPAddress].self, from: Data(#"["nope"]"#.utf8)))
    }
}
