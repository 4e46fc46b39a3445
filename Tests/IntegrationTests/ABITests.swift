// SPDX-License-Identifier: Apache-2.0
import BPFObjects
import CDatapathABI
import CLibBPF
@testable import Datapath
import XCTest

/// The Swift names of the counters must follow the C enum the programs count with.
final class ABITests: XCTestCase {
    /// PacketPath is generated from the C enum: every value the programs count with has its case,
    /// named as the C names it.
    func testPacketPathsAreTheCEnum() {
        XCTAssertEqual(PacketPath.allCases.map(\.rawValue), Array(1..<SP_PATH_MAX.rawValue))
        let c: [(sp_path, String)] = [(SP_REDIRECT_PEER, "redirect_peer"), (SP_STACK_ICMP6_ND, "stack_icmp6_nd"),
                                      (SP_DROP_MARTIAN_SOURCE, "drop_martian_source"), (SP_STACK_NOT_UNICAST, "stack_not_unicast")]
        for (value, name) in c { XCTAssertEqual(PacketPath(rawValue: value.rawValue)?.name, name) }
    }

    /// The names the Swift side opens pins by are the names the objects declare (read from their
    /// ELF symbol tables at build time): a map or program renamed in C fails here, not on a node.
    func testPinNamesAreTheObjectsOwn() {
        let maps = Set(BPFObject.datapath.maps + BPFObject.terminate.maps)
        for layout in [Layouts.endpoints4, Layouts.endpoints6, Layouts.counters, Layouts.node, Layouts.cluster4, Layouts.cluster6,
                       Layouts.uplinks, Layouts.services, Layouts.slots, Layouts.lbConfig, Layouts.departures, Layouts.terminated,
                       Layouts.sticky, Layouts.affinity, Layouts.meta, Layouts.podDevices, Layouts.nat, Layouts.natNew, Layouts.nodes4,
                       Layouts.nodes6, Layouts.local4, Layouts.local6, Layouts.sourceRanges] {
            XCTAssertTrue(maps.contains(layout.name), "\(layout.name) is a map of the objects")
        }
        let programs = Set(BPFObject.datapath.programs)
        for name in NodeDatapath.socketHooks.map(\.program) + [DatapathPrograms.podEgress, DatapathPrograms.uplinkIngress] {
            XCTAssertTrue(programs.contains(name), "\(name) is a program of the datapath")
        }
        XCTAssertEqual(NodeDatapath.socketHooks.count, 9, "every cgroup program has the hook its section names")
        XCTAssertEqual(NodeDatapath.socketHooks.first { $0.program == "sock_connect4" }?.attachType, BPF_CGROUP_INET4_CONNECT)
        XCTAssertEqual(NodeDatapath.socketHooks.first { $0.program == "sock_release" }?.attachType, BPF_CGROUP_INET_SOCK_RELEASE)
        XCTAssertEqual(Set(BPFObject.terminate.programs), ["sock_terminate_tcp", "sock_terminate_udp"])
    }

    /// The tcx attach types are named once, for headers that predate them: they must be the
    /// running kernel's (its BTF holds enum bpf_attach_type).
    func testTCXAttachTypesAreTheKernels() throws {
        let dump = try shell("bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw")
        XCTAssertTrue(dump.contains("'BPF_TCX_INGRESS' val=\(SWIFTPATH_BPF_TCX_INGRESS.rawValue)"))
        XCTAssertTrue(dump.contains("'BPF_TCX_EGRESS' val=\(SWIFTPATH_BPF_TCX_EGRESS.rawValue)"))
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
