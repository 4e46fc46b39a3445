// SPDX-License-Identifier: Apache-2.0
import CDatapathABI
import Datapath
import XCTest

/// The Swift names of the counters must follow the C enum the programs count with.
final class ABITests: XCTestCase {
    func testPacketPathsMatchTheCEnum() {
        let c: [(PacketPath, sp_path)] = [
            (.peerRedirect, SP_PATH_PEER_REDIRECT), (.fibRedirect, SP_PATH_FIB_REDIRECT), (.neighRedirect, SP_PATH_NEIGH_REDIRECT),
            (.stackNotIP, SP_STACK_NOT_IP), (.stackICMPv6ND, SP_STACK_ICMP6_ND), (.stackNotForwarded, SP_STACK_NOT_FORWARDED),
            (.stackMasquerade, SP_STACK_MASQUERADE), (.stackTTL, SP_STACK_TTL), (.stackIPOptions, SP_STACK_IP_OPTIONS),
            (.stackFragment, SP_STACK_FRAGMENT), (.stackIPv6Extension, SP_STACK_IPV6_EXTENSION), (.stackFIBOther, SP_STACK_FIB_OTHER),
            (.stackNotEndpoint, SP_STACK_NOT_ENDPOINT), (.dropSpoofedSource, SP_DROP_SPOOFED_SOURCE),
            (.dropSpoofedMAC, SP_DROP_SPOOFED_MAC), (.dropMalformed, SP_DROP_MALFORMED),
            (.stackNotUnicast, SP_STACK_NOT_UNICAST), (.dropOtherHost, SP_DROP_OTHER_HOST), (.dropMartianSource, SP_DROP_MARTIAN_SOURCE),
        ]
        XCTAssertEqual(c.count, PacketPath.allCases.count)
        XCTAssertEqual(PacketPath.allCases.count, Int(SP_PATH_MAX.rawValue) - 1)
        for (swift, cValue) in c { XCTAssertEqual(swift.rawValue, cValue.rawValue, swift.name) }
    }

    /// Map keys are compared byte by byte: none may leave a byte to the compiler's padding.
    func testMapKeysHaveNoImplicitPadding() {
        func ends<T>(_: T.Type, at lastField: PartialKeyPath<T>, of size: Int) -> Bool {
            MemoryLayout<T>.offset(of: lastField)! + size == MemoryLayout<T>.size
        }
        XCTAssertTrue(ends(sp_service_key.self, at: \sp_service_key.family, of: 1))
        XCTAssertTrue(ends(sp_backend.self, at: \sp_backend.reserved, of: 1))
        XCTAssertTrue(ends(sp_slot_key.self, at: \sp_slot_key.slot, of: 4))
        XCTAssertTrue(ends(sp_translation_key.self, at: \sp_translation_key.pad, of: 4))
        XCTAssertTrue(ends(sp_sticky_key.self, at: \sp_sticky_key.pad, of: 4))
        XCTAssertTrue(ends(sp_affinity_key.self, at: \sp_affinity_key.pad, of: 4))
        XCTAssertTrue(ends(sp_departure.self, at: \sp_departure.backend, of: MemoryLayout<sp_backend>.size))
        XCTAssertTrue(ends(sp_counter_key.self, at: \sp_counter_key.path, of: 4))
        XCTAssertEqual(MemoryLayout<sp_affinity>.offset(of: \sp_affinity.last_used_ns), 24, "the pad before it is spelled out")
    }
}
