// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import CDatapathABI

/// The paths a packet can take are `PacketPath` (module BPFObjects), generated at build time from
/// `enum sp_path` in the ABI header the programs count with.

public struct PathCounter: Equatable, Sendable {
    public let ifindex: Int32
    public let path: PacketPath
    public let packets: UInt64
    public let bytes: UInt64
}

extension Datapath {
    /// Every counter, summed over CPUs.
    public func counters() throws(BPFError) -> [PathCounter] {
        var result: [PathCounter] = []
        let counters = try map(Layouts.counters)
        for key in try counters.keys(as: sp_counter_key.self) {
            guard let path = PacketPath(rawValue: key.path) else { continue }
            let perCPU = try counters.lookupPerCPU(key, as: sp_counter.self)
            result.append(PathCounter(ifindex: Int32(key.ifindex), path: path,
                                      packets: perCPU.reduce(0) { $0 + $1.packets }, bytes: perCPU.reduce(0) { $0 + $1.bytes }))
        }
        return result.sorted { ($0.ifindex, $0.path.rawValue) < ($1.ifindex, $1.path.rawValue) }
    }
}
