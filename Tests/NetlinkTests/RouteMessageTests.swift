// SPDX-License-Identifier: Apache-2.0
import CLibMNL
import NetAddress
@testable import Netlink
import XCTest

/// Route requests as the kernel receives them, encoded without a socket and read back with the
/// same parser the replies go through.
final class RouteMessageTests: XCTestCase {
    private func request(_ route: Route, deleting: Bool = false) -> (header: nlmsghdr, route: rtmsg, attributes: [Int: [UInt8]]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        let header = NetlinkSocket.writeRequest(into: buffer, type: Int(RTM_NEWROUTE), flags: NLM_F_CREATE | NLM_F_ACK, sequence: 7) { message in
            NetlinkSocket.describe(route, in: message, deleting: deleting)
        }
        let message = NetlinkMessage(bytes: Array(UnsafeRawBufferPointer(start: header, count: Int(header.pointee.nlmsg_len))))
        return message.withContents(rtmsg.self) { family, table in
            var attributes: [Int: [UInt8]] = [:]
            for type in [RTA_DST, RTA_GATEWAY, RTA_OIF].map({ Int($0.rawValue) }) { attributes[type] = table.bytes(type) }
            return (header.pointee, family, attributes)
        }
    }

    func testARouteViaAGatewayNamesDestinationGatewayAndProtocol() {
        let route = Route(destination: IPPrefix("10.244.1.0/24")!, gateway: IPAddress("192.168.1.12")!, outputIndex: nil,
                          proto: RouteProtocol(rawValue: 157))
        let (header, message, attributes) = request(route)
        XCTAssertEqual(Int32(header.nlmsg_flags), NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK)
        XCTAssertEqual(header.nlmsg_seq, 7)
        XCTAssertEqual(Int32(message.rtm_family), AF_INET)
        XCTAssertEqual(message.rtm_dst_len, 24)
        XCTAssertEqual(message.rtm_protocol, 157)
        XCTAssertEqual(UInt32(message.rtm_table), RT_TABLE_MAIN.rawValue)
        XCTAssertEqual(UInt32(message.rtm_scope), RT_SCOPE_UNIVERSE.rawValue, "a gateway's route is universe-scoped")
        XCTAssertEqual(attributes[Int(RTA_DST.rawValue)], [10, 244, 1, 0])
        XCTAssertEqual(attributes[Int(RTA_GATEWAY.rawValue)], [192, 168, 1, 12])
        XCTAssertNil(attributes[Int(RTA_OIF.rawValue)])
    }

    func testAnOnLinkRouteOfIPv6CarriesItsDeviceAndFlag() {
        let route = Route(destination: IPPrefix("fd00:10:244:2::/64")!, gateway: IPAddress("fe80::2")!, outputIndex: 5, onLink: true)
        let (_, message, attributes) = request(route)
        XCTAssertEqual(Int32(message.rtm_family), AF_INET6)
        XCTAssertEqual(message.rtm_flags, UInt32(RTNH_F_ONLINK))
        XCTAssertEqual(attributes[Int(RTA_DST.rawValue)]?.count, 16)
        XCTAssertEqual(attributes[Int(RTA_OIF.rawValue)], withUnsafeBytes(of: UInt32(5)) { Array($0) })
    }

    func testADeletionMatchesAnyScopeAndADefaultRouteHasNoDestination() {
        let route = Route(destination: IPPrefix("0.0.0.0/0")!, gateway: nil, outputIndex: 3)
        let (_, added, attributes) = request(route)
        XCTAssertEqual(UInt32(added.rtm_scope), RT_SCOPE_LINK.rawValue, "no gateway: the device's link")
        XCTAssertNil(attributes[Int(RTA_DST.rawValue)])
        XCTAssertEqual(UInt32(request(route, deleting: true).route.rtm_scope), RT_SCOPE_NOWHERE.rawValue)
    }
}
