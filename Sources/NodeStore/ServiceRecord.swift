// SPDX-License-Identifier: Apache-2.0
import BPF
import CLibBPF
import NetAddress
#if canImport(Glibc)
import Glibc
#endif

/// A load-balanced service: a VIP, a port and a protocol.
public struct Service: Hashable, Sendable, CustomStringConvertible {
    public enum TransportProtocol: String, Sendable, CaseIterable {
        case tcp, udp
        public var number: UInt8 { UInt8(self == .tcp ? IPPROTO_TCP : IPPROTO_UDP) }
    }

    public let address: IPAddress
    public let port: UInt16
    public let proto: TransportProtocol

    public init(address: IPAddress, port: UInt16, proto: TransportProtocol) {
        self.address = address
        self.port = port
        self.proto = proto
    }

    /// "10.96.0.10:53/udp", "[fd00::10]:53/udp".
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let proto = TransportProtocol(rawValue: parts[1].lowercased()),
              let (address, port) = parseAddressAndPort(parts[0]) else { return nil }
        self.init(address: address, port: port, proto: proto)
    }

    /// "10.96.0.10:53", "[fd00::10]:53": where a client sends, whatever the protocol.
    public var endpoint: String { formatAddressAndPort(address, port) }

    public var description: String { "\(endpoint)/\(proto.rawValue)" }
}

/// Whether clients outside the node reach a service at its uplinks, and which backends they get.
public enum ExternalTraffic: Hashable, Sendable {
    /// Only the node's own sockets and its pods' reach it (a cluster IP, a service set by hand).
    case none
    /// Outside clients too, balanced over every backend (externalTrafficPolicy Cluster).
    case cluster
    /// Outside clients too, balanced over these backends on this node only, which see the client's
    /// own address (externalTrafficPolicy Local); none: such packets are dropped.
    case local([Backend])

    /// The number the store records it by.
    var code: UInt32 {
        switch self {
        case .none: 0
        case .cluster: 1
        case .local: 2
        }
    }

    public var localBackends: [Backend] {
        if case .local(let backends) = self { return backends }
        return []
    }
}

/// Which clients outside the node may open connections to a service at its uplinks
/// (loadBalancerSourceRanges): nil, every one; otherwise those inside one of the prefixes, so an
/// empty list admits none (a Service whose ranges are all of the other family).
public typealias SourceRanges = [IPPrefix]?

/// The most source ranges one service address holds: each takes an entry of the uplinks' trie.
public let maxSourceRanges = 256

/// `ranges` as a service address of `family` applies them: that family's only, as subnets, each
/// once, sorted; nil (every source) when one of them is the whole family's, as 0.0.0.0/0 is.
public func effectiveSourceRanges(_ ranges: SourceRanges, family: IPAddress.Family) -> SourceRanges {
    guard let ranges else { return nil }
    let own = Set(ranges.filter { $0.family == family }.map(\.networkPrefix))
    if own.contains(where: { $0.length == 0 }) { return nil }
    return own.sorted { ($0.address, $0.length) < ($1.address, $1.length) }
}

/// A backend of a service, with its share of new connections.
public struct Backend: Hashable, Sendable, CustomStringConvertible {
    public static let weights = 1...100

    public let address: IPAddress
    public let port: UInt16
    public let weight: Int

    public init(address: IPAddress, port: UInt16, weight: Int = 1) {
        self.address = address
        self.port = port
        self.weight = weight
    }

    /// "10.1.2.3:8080", "[fd00::3]:8080", with an optional "@WEIGHT" (1 to 100).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2, let (address, port) = parseAddressAndPort(parts[0]) else { return nil }
        let weight = parts.count == 2 ? Int(parts[1]) : 1
        guard let weight, Self.weights.contains(weight) else { return nil }
        self.init(address: address, port: port, weight: weight)
    }

    /// "10.1.2.3:8080", "[fd00::3]:8080": where a socket connects, whatever the weight.
    public var endpoint: String { formatAddressAndPort(address, port) }

    public var description: String { endpoint + (weight == 1 ? "" : "@\(weight)") }
}

func parseAddressAndPort(_ text: some StringProtocol) -> (IPAddress, UInt16)? {
    let text = String(text)
    let host: Substring, port: Substring
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
        host = text[text.index(after: text.startIndex)..<close]
        port = text[text.index(close, offsetBy: 2)...]
    } else {
        guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
        host = text[..<colon]
        port = text[text.index(after: colon)...]
    }
    guard let address = IPAddress(host), let number = UInt16(port), number > 0 else { return nil }
    return (address, number)
}

func formatAddressAndPort(_ address: IPAddress, _ port: UInt16) -> String {
    address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
}

/// What the node's services are, as whoever programmed them asked: the store keeps it apart from
/// the datapath's own maps, so that a datapath whose service maps change layout is refilled from
/// it, as the endpoint maps are refilled from the endpoint records.
///
/// A service's record is a chain of fixed-size chunks under (service, chunk number): chunk 0
/// carries the backend count, the affinity timeout, the external traffic (ExternalTraffic.code),
/// the count of its local backends and whether it is a Service written over a pod's host port
/// (1) rather than the host port's own (0), and its source ranges' count plus one (0: none, every
/// source admitted); chunks 1... sixteen backends each, the local ones after the others; chunks
/// from `sourceRangeChunks` on sixteen source ranges each. A record written before external
/// traffic existed reads as `.none`, one written before Services took over host ports as the host
/// port's own, one written before source ranges as admitting every source.
public enum ServiceRecord {
    static let backendsPerChunk = 16
    static let keySize = 24
    static let valueSize = 8 + backendsPerChunk * 20
    static let sourceRangesPerChunk = 16
    /// The first chunk number of the source ranges: past any backend chunk a record can have.
    static let sourceRangeChunks: UInt32 = 1 << 24
    static let layout = BPFMap.Layout(name: "sp_service_recs", type: BPF_MAP_TYPE_HASH,
                                      keySize: keySize, valueSize: valueSize, maxEntries: 262_144)

    static func key(_ service: Service, chunk: UInt32) -> [UInt8] {
        var writer = FixedWriter()
        writer.integer(service.address.family.rawValue)
        writer.integer(service.proto.number)
        writer.integer(service.port)
        writer.raw(service.address.bytes, size: 16)
        writer.integer(chunk)
        return writer.bytes
    }

    static func service(key: [UInt8]) -> (Service, chunk: UInt32)? {
        var reader = FixedReader(key)
        let family: UInt8 = reader.integer()
        let proto: UInt8 = reader.integer()
        let port: UInt16 = reader.integer()
        let bytes = reader.raw(size: 16)
        let chunk: UInt32 = reader.integer()
        guard let family = IPAddress.Family(rawValue: family), let address = IPAddress(bytes: bytes.prefix(family.byteCount)),
              let proto = Service.TransportProtocol.allCases.first(where: { $0.number == proto }) else { return nil }
        return (Service(address: address, port: port, proto: proto), chunk)
    }

    static func header(count: Int, affinitySeconds: UInt32, external: ExternalTraffic, overHostPort: Bool,
                       sourceRanges: SourceRanges) -> [UInt8] {
        var writer = FixedWriter()
        writer.integer(UInt32(count))
        writer.integer(affinitySeconds)
        writer.integer(external.code)
        writer.integer(UInt32(external.localBackends.count))
        writer.integer(UInt32(overHostPort ? 1 : 0))
        writer.integer(UInt32(sourceRanges.map { $0.count + 1 } ?? 0))
        return writer.padded(to: valueSize)
    }

    struct Header {
        var count: Int
        var affinitySeconds: UInt32
        var externalCode: UInt32
        var localCount: Int
        var overHostPort: Bool
        /// The source ranges' count, nil when every source is admitted.
        var sourceRangeCount: Int?

        init(_ value: [UInt8]) {
            var reader = FixedReader(value)
            count = Int(reader.integer(UInt32.self))
            affinitySeconds = reader.integer()
            externalCode = reader.integer()
            localCount = Int(reader.integer(UInt32.self))
            overHostPort = reader.integer(UInt32.self) == 1
            let ranges = Int(reader.integer(UInt32.self))
            sourceRangeCount = ranges == 0 ? nil : ranges - 1
        }

        /// Every backend the record's chunks hold.
        var stored: Int { count + (externalCode == 2 ? localCount : 0) }
        /// How many chunks its source ranges take.
        var sourceRangeChunkCount: Int { ((sourceRangeCount ?? 0) + sourceRangesPerChunk - 1) / sourceRangesPerChunk }

        func external(_ local: [Backend]) -> ExternalTraffic {
            switch externalCode {
            case 1: .cluster
            case 2: .local(local)
            default: .none
            }
        }
    }

    static func chunk(_ backends: ArraySlice<Backend>) -> [UInt8] {
        var writer = FixedWriter()
        writer.integer(UInt32(backends.count))
        writer.integer(UInt32(0))
        for backend in backends {
            writer.integer(backend.address.family.rawValue)
            writer.integer(UInt8(backend.weight))
            writer.integer(backend.port)
            writer.raw(backend.address.bytes, size: 16)
        }
        return writer.padded(to: valueSize)
    }

    static func chunk(_ ranges: ArraySlice<IPPrefix>) -> [UInt8] {
        var writer = FixedWriter()
        writer.integer(UInt32(ranges.count))
        writer.integer(UInt32(0))
        for range in ranges { writer.prefix(range.networkPrefix) }
        return writer.padded(to: valueSize)
    }

    static func sourceRanges(in value: [UInt8]) -> [IPPrefix] {
        var reader = FixedReader(value)
        let count = min(Int(reader.integer(UInt32.self)), sourceRangesPerChunk)
        _ = reader.integer(UInt32.self)
        return (0..<count).compactMap { _ in reader.prefix() }
    }

    static func backends(in value: [UInt8]) -> [Backend] {
        var reader = FixedReader(value)
        let count = min(Int(reader.integer(UInt32.self)), backendsPerChunk)
        _ = reader.integer(UInt32.self)
        return (0..<count).compactMap { _ in
            let family: UInt8 = reader.integer()
            let weight: UInt8 = reader.integer()
            let port: UInt16 = reader.integer()
            let bytes = reader.raw(size: 16)
            guard let family = IPAddress.Family(rawValue: family), let address = IPAddress(bytes: bytes.prefix(family.byteCount)),
                  Backend.weights.contains(Int(weight)) else { return nil }
            return Backend(address: address, port: port, weight: Int(weight))
        }
    }
}

extension EndpointStore {
    /// The recorded backends, affinity timeout, external traffic and source ranges of `service`, or
    /// nil when none is recorded.
    public func serviceRecord(_ service: Service) throws(BPFError)
        -> (backends: [Backend], affinitySeconds: UInt32, external: ExternalTraffic, sourceRanges: SourceRanges)? {
        guard let value = try services.lookup(ServiceRecord.key(service, chunk: 0)) else { return nil }
        let header = ServiceRecord.Header(value)
        var backends: [Backend] = []
        var chunk: UInt32 = 1
        while backends.count < header.stored, let value = try services.lookup(ServiceRecord.key(service, chunk: chunk)) {
            backends += ServiceRecord.backends(in: value)
            chunk += 1
        }
        let count = min(header.count, backends.count)
        var sourceRanges: SourceRanges = nil
        if let rangeCount = header.sourceRangeCount {
            var ranges: [IPPrefix] = []
            for index in 0..<header.sourceRangeChunkCount {
                guard let value = try services.lookup(ServiceRecord.key(service, chunk: ServiceRecord.sourceRangeChunks + UInt32(index))) else { break }
                ranges += ServiceRecord.sourceRanges(in: value)
            }
            sourceRanges = Array(ranges.prefix(rangeCount))
        }
        return (Array(backends[..<count]), header.affinitySeconds, header.external(Array(backends[count...])), sourceRanges)
    }

    /// Whether `service`'s record is a Service's written over a pod's host port, which the pod's
    /// teardown must leave alone.
    public func isServiceOverHostPort(_ service: Service) throws(BPFError) -> Bool {
        try services.lookup(ServiceRecord.key(service, chunk: 0)).map { ServiceRecord.Header($0).overHostPort } ?? false
    }

    /// Records `service` as having exactly `backends`: the chunks first, then the header that
    /// counts them, then whatever chunks the previous record had beyond the new ones go.
    /// `overHostPort`: it is a Service that took a pod's host port over.
    public func recordService(_ service: Service, backends: [Backend], affinitySeconds: UInt32,
                              external: ExternalTraffic = .none, overHostPort: Bool = false,
                              sourceRanges: SourceRanges = nil) throws(BPFError) {
        let header = try services.lookup(ServiceRecord.key(service, chunk: 0)).map(ServiceRecord.Header.init)
        let previous = header?.stored ?? 0
        let stored = backends + external.localBackends
        let chunks = stored.chunked(by: ServiceRecord.backendsPerChunk)
        for (index, chunk) in chunks.enumerated() {
            try services.upsert(ServiceRecord.key(service, chunk: UInt32(index + 1)), ServiceRecord.chunk(chunk))
        }
        let rangeChunks = (sourceRanges ?? []).chunked(by: ServiceRecord.sourceRangesPerChunk)
        for (index, chunk) in rangeChunks.enumerated() {
            try services.upsert(ServiceRecord.key(service, chunk: ServiceRecord.sourceRangeChunks + UInt32(index)), ServiceRecord.chunk(chunk))
        }
        try services.upsert(ServiceRecord.key(service, chunk: 0),
                            ServiceRecord.header(count: backends.count, affinitySeconds: affinitySeconds, external: external,
                                                 overHostPort: overHostPort, sourceRanges: sourceRanges))
        try deleteServiceChunks(service, from: chunks.count + 1, previousCount: previous)
        try deleteSourceRangeChunks(service, from: rangeChunks.count, previousCount: header?.sourceRangeChunkCount ?? 0)
    }

    /// Forgets `service`'s record.
    public func forgetService(_ service: Service) throws(BPFError) {
        guard let header = try services.lookup(ServiceRecord.key(service, chunk: 0)) else { return }
        try services.delete(ServiceRecord.key(service, chunk: 0))
        try deleteServiceChunks(service, from: 1, previousCount: ServiceRecord.Header(header).stored)
        try deleteSourceRangeChunks(service, from: 0, previousCount: ServiceRecord.Header(header).sourceRangeChunkCount)
    }

    private func deleteSourceRangeChunks(_ service: Service, from first: Int, previousCount: Int) throws(BPFError) {
        guard first < previousCount else { return }
        for index in first..<previousCount {
            try services.delete(ServiceRecord.key(service, chunk: ServiceRecord.sourceRangeChunks + UInt32(index)))
        }
    }

    private func deleteServiceChunks(_ service: Service, from first: Int, previousCount: Int) throws(BPFError) {
        let last = (previousCount + ServiceRecord.backendsPerChunk - 1) / ServiceRecord.backendsPerChunk
        guard first <= last else { return }
        for chunk in first...last { try services.delete(ServiceRecord.key(service, chunk: UInt32(chunk))) }
    }

    /// Every recorded service.
    public func recordedServices() throws(BPFError)
        -> [(service: Service, backends: [Backend], affinitySeconds: UInt32, external: ExternalTraffic, sourceRanges: SourceRanges)] {
        var result: [(service: Service, backends: [Backend], affinitySeconds: UInt32, external: ExternalTraffic,
                      sourceRanges: SourceRanges)] = []
        for key in try services.rawKeys() {
            guard let (service, chunk) = ServiceRecord.service(key: key), chunk == 0,
                  let record = try serviceRecord(service) else { continue }
            result.append((service, record.backends, record.affinitySeconds, record.external, record.sourceRanges))
        }
        return result.sorted { $0.service.description < $1.service.description }
    }
}

extension Array {
    /// The array in slices of `size` elements, the last one shorter: a record's chunks.
    func chunked(by size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
