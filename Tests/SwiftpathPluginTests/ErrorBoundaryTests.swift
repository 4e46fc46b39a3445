// SPDX-License-Identifier: Apache-2.0
import BPF
import CNIProtocol
import Datapath
import NFTables
@testable import SwiftpathPlugin
import SystemCallSupport
import SystemPackage
import XCTest

/// Each part of the node that can fail has its own CNI code, so that a runtime's log tells an
/// operator where to look without reading the details.
final class ErrorBoundaryTests: XCTestCase {
    func testBPFFailuresAreTheDatapathsOrTheStores() {
        XCTAssertEqual(CNIError(bpf: BPFError("load BPF object datapath", .permissionDenied, kind: .program)).code, .datapathFailure)
        XCTAssertEqual(CNIError(bpf: BPFError("newer datapath", kind: .newerBuild)).code, .datapathFailure)
        XCTAssertEqual(CNIError(bpf: BPFError("open pinned map", .noSuchFileOrDirectory, kind: .missingPin)).code, .storeFailure)
        XCTAssertEqual(CNIError(bpf: BPFError("update map", .noMemory)).code, .storeFailure)
    }

    func testMasqueradeAndCgroupFailuresHaveCodesOfTheirOwn() {
        let nft = CNIError(datapath: .masquerade(NFTablesError("replace table inet swiftpath: nft exited with 1")))
        XCTAssertEqual(nft.code, .masqueradeFailure)
        XCTAssertTrue(nft.details.contains("nft exited with 1"), "the lower layer's context reaches the details")
        let cgroup = CNIError(datapath: .cgroup(SystemCallError("open cgroup /sys/fs/cgroup/x", .noSuchFileOrDirectory)))
        XCTAssertEqual(cgroup.code, .cgroupFailure)
        XCTAssertEqual(CNIError(datapath: .bpf(BPFError("attach tcx", .invalidArgument, kind: .program))).code, .datapathFailure)
    }
}
