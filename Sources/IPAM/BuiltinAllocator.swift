// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import NetAddress

/// The `ipam` section of the built-in allocator:
/// `{"type": "swiftpath", "ranges": [{"subnet": "10.244.1.0/24"}, {"subnet": "fd00:10:244:1::/64"}]}`.
/// One address is leased from each range; ranges of one family are tried in order.
public struct BuiltinIPAMConfig: Sendable {
    public static let type = "swiftpath"

    public struct Range: Sendable, Equatable {
        public let subnet: IPPrefix
        public let start: IPAddress
        public let end: IPAddress
        public let gateway: IPAddress

        /// How many addresses lie between start and end.
        var size: UInt128 { end.value - start.value + 1 }

        func contains(_ address: IPAddress) -> Bool {
            address.family == start.family && address >= start && address <= end
        }
    }

    public let ranges: [Range]
    public let routes: [CNIResult.Route]

    private struct Wire: Decodable {
        struct WireRange: Decodable {
            var subnet: IPPrefix
            var rangeStart: IPAddress?
            var rangeEnd: IPAddress?
            var gateway: IPAddress?
        }
        var ranges: [WireRange]
        var routes: [CNIResult.Route]?
    }

    private struct Section: Decodable { var ipam: Wire }

    public init(parsing raw: [UInt8]) throws(CNIError) {
        let wire = try JSONCoding.decode(Section.self, from: raw).ipam
        guard !wire.ranges.isEmpty else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"ipam.ranges\" in network config",
                           details: "at least one range is needed")
        }
        var ranges: [Range] = []
        for (index, range) in wire.ranges.enumerated() {
            ranges.append(try Self.validate(range, key: "ipam.ranges[\(index)]"))
        }
        self.ranges = ranges
        self.routes = wire.routes ?? []
    }

    private static func validate(_ range: Wire.WireRange, key: String) throws(CNIError) -> Range {
        func bad(_ field: String, _ why: String) -> CNIError {
            CNIError(.invalidNetworkConfig, "invalid value for key \"\(key).\(field)\" in network config", details: why)
        }
        let subnet = range.subnet
        let hostBits = subnet.family.bitWidth - subnet.length
        guard hostBits >= 2 else { throw bad("subnet", "\(subnet) leaves no room for pods and a gateway") }
        let network = subnet.network
        // IPv4 keeps the network and broadcast addresses out; IPv6 only the subnet-router anycast one.
        let firstUsable = network.advanced(by: 1)!
        let lastUsable = subnet.family == .v4 ? IPAddress(family: .v4, value: subnet.last.value - 1) : subnet.last
        let start = range.rangeStart ?? firstUsable
        let end = range.rangeEnd ?? lastUsable
        guard subnet.contains(start), start >= firstUsable, start <= lastUsable else {
            throw bad("rangeStart", "\(start) is not a usable address of \(subnet)")
        }
        guard subnet.contains(end), end >= start, end <= lastUsable else {
            throw bad("rangeEnd", "\(end) is not a usable address of \(subnet) at or after \(start)")
        }
        let gateway = range.gateway ?? firstUsable
        guard gateway.family == subnet.family else { throw bad("gateway", "\(gateway) is not of the subnet's family") }
        return Range(subnet: IPPrefix(address: network, length: subnet.length)!, start: start, end: end, gateway: gateway)
    }
}

/// Leases addresses from the store's lease map: no second process, no files, atomic inserts.
public struct BuiltinAllocator: AddressManager {
    public let config: BuiltinIPAMConfig
    public let network: String
    public let store: EndpointStore
    public var source: EndpointRecord.AddressSource { .builtin }

    /// The most candidates one range is searched for a free address (bounds the search of an IPv6 /64).
    static let searchLimit: UInt128 = 1 << 16

    public init(config: BuiltinIPAMConfig, network: String, store: EndpointStore) {
        self.config = config
        self.network = network
        self.store = store
    }

    public func allocate(for attachment: Attachment) throws(CNIError) -> CNIResult {
        var result = CNIResult(routes: config.routes)
        var leased: [IPAddress] = []
        var families: Set<IPAddress.Family> = []
        do throws(CNIError) {
            for range in config.ranges where !families.contains(range.subnet.family) {
                guard let address = try lease(in: range, for: attachment) else { continue }
                leased.append(address)
                families.insert(range.subnet.family)
                result.ips.append(.init(address: IPPrefix(address: address, length: range.subnet.length)!,
                                        gateway: range.gateway))
            }
            let wanted = Set(config.ranges.map(\.subnet.family))
            guard families == wanted else {
                let missing = wanted.subtracting(families).map { $0 == .v4 ? "IPv4" : "IPv6" }.sorted()
                throw CNIError(.addressesExhausted, "no free \(missing.joined(separator: " or ")) address in network \(network)",
                               details: "every address of the configured ranges is leased")
            }
        } catch {
            for address in leased { _ = try? store.release(address, network: network) }
            throw error
        }
        return result
    }

    /// Leases the first free address after the range's cursor, wrapping around once.
    private func lease(in range: BuiltinIPAMConfig.Range, for attachment: Attachment) throws(CNIError) -> IPAddress? {
        let last = try storeCall { () throws(BPFError) in try store.cursor(network: network, range: range.subnet) }
        var offset: UInt128 = 0
        if let last, range.contains(last) { offset = (last.value - range.start.value + 1) % range.size }
        for step in 0..<min(range.size, Self.searchLimit) {
            let candidate = IPAddress(family: range.start.family, value: range.start.value + (offset + step) % range.size)
            if candidate == range.gateway { continue }
            let won = try storeCall { () throws(BPFError) in
                try store.lease(candidate, network: network, containerID: attachment.containerID, ifname: attachment.ifname)
            }
            if won {
                _ = try? store.setCursor(candidate, network: network, range: range.subnet)
                return candidate
            }
        }
        return nil
    }

    public func release(for attachment: Attachment, addresses: [IPAddress]?) throws(CNIError) {
        try storeCall { () throws(BPFError) in
            // Without the store's record of them, find the attachment's leases by walking the map.
            var candidates = addresses ?? []
            if addresses == nil {
                candidates = try store.leases(network: network).filter { $0.owner == attachment }.map(\.address)
            }
            for address in candidates {
                guard try store.leaseHolder(address, network: network)?.owner == attachment else { continue }
                try store.release(address, network: network)
            }
        }
    }

    public func check(for attachment: Attachment, expecting addresses: [IPAddress]) throws(CNIError) {
        for address in addresses {
            let holder = try storeCall { () throws(BPFError) in try store.leaseHolder(address, network: network) }
            guard holder?.owner == attachment else {
                throw CNIError(.checkFailed, "address \(address) is not leased to \(attachment.containerID)/\(attachment.ifname)",
                               details: holder.map { "it is leased to \($0.containerID)/\($0.ifname)" } ?? "it is not leased")
            }
        }
    }

    public func collectGarbage(keeping valid: Set<Attachment>, stale: [Attachment]) throws(CNIError) {
        try storeCall { () throws(BPFError) in
            for lease in try store.leases(network: network) where !valid.contains(lease.owner) {
                try store.release(lease.address, network: network)
            }
        }
    }

    public func status() throws(CNIError) {
        let leases = try storeCall { () throws(BPFError) in try store.leases(network: network) }
        for range in config.ranges {
            let used = UInt128(leases.filter { range.contains($0.address) }.count)
            let usable = range.size - (range.contains(range.gateway) ? 1 : 0)
            if used >= usable, config.ranges.filter({ $0.subnet.family == range.subnet.family }).count == 1 {
                throw CNIError(.pluginNotAvailable, "range \(range.subnet) of network \(network) has no free address")
            }
        }
    }

    private func storeCall<T>(_ body: () throws(BPFError) -> T) throws(CNIError) -> T {
        do { return try body() } catch {
            throw CNIError(.storeFailure, "IP lease store failed", details: error.description)
        }
    }
}

extension Lease {
    var owner: Attachment { Attachment(containerID: containerID, ifname: ifname) }
}
