// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
@testable import Datapath
import XCTest

/// Which translated connections a sweep removes, and when.
final class ConnectionExpiryTests: XCTestCase {
    private let second: UInt64 = 1_000_000_000
    private let timeouts = ConnectionTimeouts()   // TCP 6 h, closing 10 s, UDP 60 s, unconfirmed 10 s, half 5 s
    private let now: UInt64 = 1_000_000 * 1_000_000_000

    private func entry(proto: UInt8 = 6, flags: UInt32 = 0, idleSeconds: UInt64) -> sp_nat {
        var entry = sp_nat()
        entry.to.proto = proto
        entry.flags = flags
        entry.last_seen_ns = now - idleSeconds * second
        return entry
    }

    func testATCPConnectionLivesSixHoursIdleAUDPFlowAMinute() {
        XCTAssertEqual(timeouts.verdict(on: entry(idleSeconds: 3_600), partner: entry(idleSeconds: 3_600), now: now), .keep)
        XCTAssertEqual(timeouts.verdict(on: entry(idleSeconds: 21_601), partner: entry(idleSeconds: 21_601), now: now), .expire)
        XCTAssertEqual(timeouts.verdict(on: entry(proto: 17, idleSeconds: 59), partner: entry(proto: 17, idleSeconds: 59), now: now), .keep)
        XCTAssertEqual(timeouts.verdict(on: entry(proto: 17, idleSeconds: 61), partner: entry(proto: 17, idleSeconds: 61), now: now), .expire)
    }

    func testIdleCountsFromEitherDirectionsLastPacket() {
        XCTAssertEqual(timeouts.verdict(on: entry(proto: 17, idleSeconds: 600), partner: entry(proto: 17, idleSeconds: 1), now: now), .keep,
                       "the replies keep a quiet client's flow")
    }

    func testAConnectionClosesOnlyWhenBothDirectionsSentAFIN() {
        let closed = entry(flags: SP_NAT_FIN, idleSeconds: 11)
        XCTAssertEqual(timeouts.verdict(on: closed, partner: entry(flags: SP_NAT_FIN, idleSeconds: 11), now: now), .expire)
        XCTAssertEqual(timeouts.verdict(on: closed, partner: entry(idleSeconds: 11), now: now), .keep, "half closed: still TCP's timeout")
    }

    func testAnUnconfirmedConnectionGoesSoon() {
        let forged = entry(flags: SP_NAT_UNCONFIRMED, idleSeconds: 11)
        XCTAssertEqual(timeouts.verdict(on: forged, partner: entry(flags: SP_NAT_UNCONFIRMED | SP_NAT_REPLY_DIRECTION, idleSeconds: 11), now: now),
                       .expire)
    }

    func testAHalfWhoseOtherHalfWasEvictedGoesAfterAMoment() {
        XCTAssertEqual(timeouts.verdict(on: entry(idleSeconds: 4), partner: nil, now: now), .keep)
        XCTAssertEqual(timeouts.verdict(on: entry(idleSeconds: 6), partner: nil, now: now), .evictHalf)
    }

    func testAClockBehindTheLastPacketIsNoIdleness() {
        var fresh = entry(idleSeconds: 0)
        fresh.last_seen_ns = now + second
        XCTAssertEqual(timeouts.verdict(on: fresh, partner: nil, now: now), .keep)
    }
}
