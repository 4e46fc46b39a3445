// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import NetAddress
@testable import SwiftpathPlugin
import XCTest

/// The routes a pod gets: IPAM's, normalised and without repeats, through the family's gateway
/// when IPAM names none, then a default route for each family that lacks one.
final class RoutePlanTests: XCTestCase {
    private let gateways = [IPAddress.Family.v4: IPAddress("10.1.0.1")!, .v6: IPAddress("fe80::1")!]

    func testDefaultsForEveryFamily() {
        let routes = Plugin.podRoutes([], gateways: gateways)
        XCTAssertEqual(routes, [.init(dst: IPPrefix("0.0.0.0/0")!, gw: IPAddress("10.1.0.1")),
                                .init(dst: IPPrefix("::/0")!, gw: IPAddress("fe80::1"))])
    }

    func testIPAMRoutesNormalisedAndDeduplicated() {
        let ipam: [CNIResult.Route] = [.init(dst: IPPrefix("10.200.3.4/16")!), .init(dst: IPPrefix("10.200.0.0/16")!),
                                       .init(dst: IPPrefix("0.0.0.0/0")!, gw: IPAddress("10.1.0.254")),
                                       .init(dst: IPPrefix("fd00:1::/64")!)]
        let routes = Plugin.podRoutes(ipam, gateways: [.v4: IPAddress("10.1.0.1")!])
        XCTAssertEqual(routes, [.init(dst: IPPrefix("10.200.0.0/16")!, gw: IPAddress("10.1.0.1")),
                                .init(dst: IPPrefix("0.0.0.0/0")!, gw: IPAddress("10.1.0.254"))],
                       "IPAM's own default route kept; the IPv6 route dropped, the pod has no IPv6 address")
    }
}
