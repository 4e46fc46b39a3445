// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CDatapathABI
import NetAddress

/// loadBalancerSourceRanges in the uplinks' LPM trie: per ranged frontend, an entry denying every
/// source and one admitting each range, so the longest match answers in one lookup.
extension Datapath {
    private static let frontendBits = UInt32(8 * MemoryLayout<sp_service_key>.size)

    /// Makes `ranges` the sources outside the node that may open connections to `service`, where
    /// `previous` were. The new ranges are admitted before the old ones go, and a frontend is
    /// closed to others only once its ranges are in: a client of both sets is never refused. A
    /// range of the other family than the service's admits nobody and is left out.
    func admit(_ ranges: SourceRanges, to service: Service, replacing previous: SourceRanges) throws(BPFError) {
        let frontend = serviceKey(service)
        let wanted = Set((ranges ?? []).filter { $0.family == service.address.family }.map { $0.networkPrefix })
        let existing = Set((previous ?? []).filter { $0.family == service.address.family }.map { $0.networkPrefix })
        let map = try sourceRangesMap
        for range in wanted.subtracting(existing) {
            try map.upsert(rangeKey(frontend, range), UInt8(SP_SOURCE_ALLOWED))
        }
        if ranges != nil {
            try map.upsert(deniedKey(frontend), UInt8(SP_SOURCE_DENIED))
        } else {
            try map.delete(deniedKey(frontend))
        }
        for range in existing.subtracting(wanted) { try map.delete(rangeKey(frontend, range)) }
    }

    /// The source ranges of every ranged frontend, read from the trie.
    func sourceRangesByFrontend() throws(BPFError) -> [Service: [IPPrefix]] {
        var result: [Service: [IPPrefix]] = [:]
        let map = try sourceRangesMap
        for key in try map.keys(as: sp_source_range_key.self) {
            guard let service = Self.service(key.frontend) else { continue }
            guard key.prefixlen > Self.frontendBits,
                  let address = Self.address(key.addr, family: key.frontend.family),
                  let range = IPPrefix(address: address, length: Int(key.prefixlen - Self.frontendBits)) else {
                result[service, default: []] += []
                continue
            }
            result[service, default: []].append(range)
        }
        return result.mapValues { $0.sorted { ($0.address, $0.length) < ($1.address, $1.length) } }
    }

    /// What the trie holds for `service`, for a service the store has no record of.
    func programmedSourceRanges(_ service: Service) throws(BPFError) -> SourceRanges {
        try sourceRangesByFrontend()[service]
    }

    private func deniedKey(_ frontend: sp_service_key) -> sp_source_range_key {
        sp_source_range_key(prefixlen: Self.frontendBits, frontend: frontend, addr: sp_service_key().addr)
    }

    private func rangeKey(_ frontend: sp_service_key, _ range: IPPrefix) -> sp_source_range_key {
        var key = deniedKey(frontend)
        key.prefixlen += UInt32(range.length)
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: range.network.bytes) }
        return key
    }
}

extension IPPrefix {
    /// The prefix with its host bits cleared: "10.1.2.3/24" is "10.1.2.0/24".
    var networkPrefix: IPPrefix { IPPrefix(address: network, length: length)! }
}
