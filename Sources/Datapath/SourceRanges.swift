// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CDatapathABI
import NetAddress

/// What the uplinks' trie holds for one service address: whether it refuses the sources outside
/// its ranges, and the ranges it admits.
struct AdmittedSources: Equatable {
    var restricted = false
    var ranges: [IPPrefix] = []

    /// As a service's source ranges: ranges without the refusal of the rest restrict nothing.
    var sourceRanges: SourceRanges { restricted ? ranges : nil }
}

/// loadBalancerSourceRanges in the uplinks' LPM trie: per restricted service address, an entry
/// refusing every source and one admitting each range, so the longest match answers in one lookup.
/// A range entry without the refusal beside it changes nothing, which is what makes every order
/// of writes below safe to stop half-way: the next write, or the agent's next comparison (which
/// reads such an address as open), finishes the job.
extension ServiceMaps {
    private static let frontendBits = UInt32(8 * MemoryLayout<sp_service_key>.size)

    /// Restricts `service` to clients inside `ranges` (effective: its family's, none the whole
    /// family), where the trie held `admitted`: the new ranges in first, then the refusal of the
    /// rest, then the ranges no longer wanted out, so that a client of both sets is never refused.
    func restrict(_ service: Service, to ranges: [IPPrefix], admitted: AdmittedSources) throws(BPFError) {
        let frontend = sp_service_key(service)
        let map = try sourceRangesMap
        let wanted = Set(ranges), held = Set(admitted.ranges)
        for range in wanted.subtracting(held) { try map.upsert(rangeKey(frontend, range), UInt8(SP_SOURCE_ALLOWED)) }
        if !admitted.restricted { try map.upsert(deniedKey(frontend), UInt8(SP_SOURCE_DENIED)) }
        for range in held.subtracting(wanted) { try map.delete(rangeKey(frontend, range)) }
    }

    /// Opens `service` to every client: the refusal goes first, then the range entries known of;
    /// any other left from an interrupted write changes nothing without the refusal.
    func unrestrict(_ service: Service, admitting ranges: [IPPrefix]) throws(BPFError) {
        let frontend = sp_service_key(service)
        let map = try sourceRangesMap
        try map.delete(deniedKey(frontend))
        for range in ranges { try map.delete(rangeKey(frontend, range)) }
    }

    /// What the trie holds, by service address: one walk of it.
    func admittedSources() throws(BPFError) -> [Service: AdmittedSources] {
        var result: [Service: AdmittedSources] = [:]
        for key in try sourceRangesMap.keys(as: sp_source_range_key.self) {
            guard let service = Service(mapKey: key.frontend) else { continue }
            guard key.prefixlen > Self.frontendBits else {
                result[service, default: AdmittedSources()].restricted = true
                continue
            }
            guard let address = IPAddress(mapBytes: key.addr, family: key.frontend.family),
                  let range = IPPrefix(address: address, length: Int(key.prefixlen - Self.frontendBits)) else { continue }
            result[service, default: AdmittedSources()].ranges.append(range)
        }
        return result.mapValues {
            AdmittedSources(restricted: $0.restricted, ranges: $0.ranges.sorted { ($0.address, $0.length) < ($1.address, $1.length) })
        }
    }

    /// Empties the trie and restricts every recorded service that has ranges: after the trie or
    /// the service maps were made anew.
    func refillSourceRanges() throws(BPFError) {
        let map = try sourceRangesMap
        for raw in try map.rawKeys() { try map.delete(raw) }
        for entry in try store.recordedServices() {
            guard let ranges = entry.sourceRanges else { continue }
            try restrict(entry.service, to: ranges, admitted: AdmittedSources())
        }
    }

    private func deniedKey(_ frontend: sp_service_key) -> sp_source_range_key {
        sp_source_range_key(prefixlen: Self.frontendBits, frontend: frontend, addr: sp_service_key().addr)
    }

    /// A range's entry; never the refusal's key, since no effective range is the whole family.
    private func rangeKey(_ frontend: sp_service_key, _ range: IPPrefix) -> sp_source_range_key {
        precondition(range.length > 0, "a range of the whole family is no restriction")
        var key = deniedKey(frontend)
        key.prefixlen += UInt32(range.length)
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: range.network.bytes) }
        return key
    }
}
