// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import IPAM
import NetAddress
import XCTest

final class BuiltinIPAMConfigTests: XCTestCase {
    private func parse(_ ranges: String) throws -> BuiltinIPAMConfig {
        try BuiltinIPAMConfig(parsing: Array(#"{"ipam":{"type":"swiftpath","ranges":\#(ranges)}}"#.utf8))
    }

    func testDefaultsLeaveOutNetworkBroadcastAndGateway() throws {
        let config = try parse(#"[{"subnet":"10.7.0.9/24"},{"subnet":"fd00:7::/64"}]"#)
        let v4 = config.ranges[0], v6 = config.ranges[1]
        XCTAssertEqual(v4.subnet.description, "10.7.0.0/24")
        XCTAssertEqual(v4.start.description, "10.7.0.1")
        XCTAssertEqual(v4.end.description, "10.7.0.254")
        XCTAssertEqual(v4.gateway.description, "10.7.0.1")
        XCTAssertEqual(v6.start.description, "fd00:7::1")
        XCTAssertEqual(v6.end.description, "fd00:7::ffff:ffff:ffff:ffff")
    }

    func testExplicitRangeAndGateway() throws {
        let range = try parse(#"[{"subnet":"10.7.0.0/24","rangeStart":"10.7.0.100","rangeEnd":"10.7.0.110","gateway":"10.7.0.254"}]"#).ranges[0]
        XCTAssertEqual(range.start.description, "10.7.0.100")
        XCTAssertEqual(range.end.description, "10.7.0.110")
        XCTAssertEqual(range.gateway.description, "10.7.0.254")
    }

    func testInvalidRangesNameTheirKey() {
        let cases = [
            (#"[]"#, "ipam.ranges"),
            (#"[{"subnet":"10.7.0.0/31"}]"#, "ipam.ranges[0].subnet"),
            (#"[{"subnet":"10.7.0.0/24"},{"subnet":"10.8.0.0/24","rangeStart":"10.9.0.1"}]"#, "ipam.ranges[1].rangeStart"),
            (#"[{"subnet":"10.7.0.0/24","rangeStart":"10.7.0.50","rangeEnd":"10.7.0.40"}]"#, "ipam.ranges[0].rangeEnd"),
            (#"[{"subnet":"10.7.0.0/24","gateway":"fd00::1"}]"#, "ipam.ranges[0].gateway"),
            (#"[{"subnet":"banana"}]"#, "ipam.ranges[0].subnet"),
            (#"[{"rangeStart":"10.7.0.1"}]"#, "ipam.ranges[0].subnet"),
        ]
        for (ranges, key) in cases {
            XCTAssertThrowsError(try parse(ranges), ranges) { error in
                let error = error as! CNIError
                XCTAssertEqual(error.code, .invalidNetworkConfig, ranges)
                XCTAssertTrue(error.msg.contains("\"\(key)\""), "\(ranges): \(error.msg)")
            }
        }
    }

    func testDefaultGatewaysAreLinkLocal() {
        XCTAssertEqual(defaultGateway(.v4).description, "169.254.1.1")
        XCTAssertEqual(defaultGateway(.v6).description, "fe80::1")
    }
}
