// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import CDatapathABI
import NetAddress
#if canImport(Glibc)
import Glibc
#endif

/// The connections from outside the node that the uplinks translated to a service's backend
/// (bpf/lib/nat.h). The programs keep no timers: what is idle past its timeout is removed here.
public struct TranslatedConnection: Equatable, Sendable, CustomStringConvertible {
    public let proto: Service.TransportProtocol
    /// The client, as "address:port".
    public let client: String
    /// The service it connected to.
    public let service: String
    /// The node's address and port the backend sees instead of the client's (a backend on
    /// another node); nil when the backend sees the client.
    public let nodeSource: String?
    public let backend: Backend
    /// Nanoseconds since either direction's last packet (to the second).
    public let idleNanoseconds: UInt64
    /// A TCP connection that sent a FIN each way (a RST removes it at once).
    public let closing: Bool
    /// Its client has not yet shown it gets the backend's replies (bpf/lib/nat.h): what a flood
    /// from forged sources leaves, kept in a table of its own and expired soon.
    public let unconfirmed: Bool

    public var description: String {
        "\(proto.rawValue) \(client) -> \(service) -> \(nodeSource.map { $0 + " -> " } ?? "")\(backend.endpoint)"
            + (closing ? " (closing)" : "") + (unconfirmed ? " (unconfirmed)" : "")
    }
}

/// How long an idle translated connection is kept.
public struct ConnectionTimeouts: Sendable, Equatable {
    /// An open TCP connection (nf_conntrack keeps one five days; Cilium six hours).
    public var tcpSeconds: UInt64 = 21_600
    /// A TCP connection after a FIN each way.
    public var tcpClosingSeconds: UInt64 = 10
    public var udpSeconds: UInt64 = 60
    /// A connection whose client has not confirmed it (a SYN or a datagram, and no more): a
    /// handshake takes a round trip; a forged source never confirms.
    public var unconfirmedSeconds: UInt64 = 10
    /// Half of a connection whose other half the LRU evicted is removed once idle this long (not
    /// at once: a connection being opened has its reply entry a moment before its client's).
    public var halfSeconds: UInt64 = 5

    public init() {}
}

extension ConnectionTimeouts {
    /// What a sweep does with one entry of the connection tables.
    enum Verdict: Equatable {
        case keep
        /// The connection is idle past its timeout: both its entries go.
        case expire
        /// The entry's other half is gone (the LRU evicted it): this half goes once idle a moment.
        case evictHalf
    }

    /// The verdict on `entry`, whose other direction's entry is `partner`, at `now` (monotonic
    /// nanoseconds): idle since either direction's last packet, measured against the timeout of
    /// its kind (unconfirmed, UDP, closing TCP, TCP).
    func verdict(on entry: sp_nat, partner: sp_nat?, now: UInt64) -> Verdict {
        let lastSeen = max(entry.last_seen_ns, partner?.last_seen_ns ?? 0)
        let idle = now > lastSeen ? now - lastSeen : 0
        guard partner != nil else { return idle > halfSeconds * 1_000_000_000 ? .evictHalf : .keep }
        let seconds = entry.flags & SP_NAT_UNCONFIRMED != 0 ? unconfirmedSeconds
            : entry.to.proto == Service.TransportProtocol.udp.number ? udpSeconds
            : Connections.closing(entry, partner) ? tcpClosingSeconds : tcpSeconds
        return idle > seconds * 1_000_000_000 ? .expire : .keep
    }
}

/// What a sweep of the connection tables did.
public struct ConnectionSweep: Sendable, Equatable {
    /// Connections removed idle past their timeout.
    public var expired = 0
    /// Halves of connections whose other half the tables' LRU evicted under pressure, removed.
    public var evicted = 0
}

/// How full the connection tables are.
public struct ConnectionTableOccupancy: Sendable, Equatable {
    /// Connections, counted by their client-side entries.
    public var connections = 0
    public var confirmed = 0
    public var unconfirmed = 0
    public var confirmedCapacity = 0
    public var unconfirmedCapacity = 0
}

/// The connections from outside the node that the uplinks translated to a service's backend, and
/// the sockets of the node's pods still aimed at a backend that left its service.
public struct Connections: DatapathPart {
    let pins: DatapathPins

    var natMap: BPFMap { get throws(BPFError) { try map(Layouts.nat) } }
    var unconfirmedNatMap: BPFMap { get throws(BPFError) { try map(Layouts.natNew) } }
}

extension Connections {
    /// Every translated connection, once per connection (its entry for the client's direction;
    /// a reply entry whose pair the LRU evicted is left out).
    public func translated() throws(BPFError) -> [TranslatedConnection] {
        let now = Self.monotonicNanoseconds()
        let table = try natTable()
        return table.compactMap { key, value in
            guard value.flags & SP_NAT_REPLY_DIRECTION == 0 else { return nil }
            let partner = table[Self.reversed(value.to)]
            return Self.connection(key, value, partner: partner, now: now)
        }.sorted { ($0.client, $0.service) < ($1.client, $1.service) }
    }

    /// Removes the connections idle past their timeout (both entries), and halves of connections
    /// whose other half was evicted. Reads each table in a few batches; takes no lock.
    @discardableResult
    public func expire(_ timeouts: ConnectionTimeouts) throws(BPFError) -> ConnectionSweep {
        let now = Self.monotonicNanoseconds()
        let table = try natTable()
        var sweep = ConnectionSweep()
        for (key, value) in table {
            let partnerKey = Self.reversed(value.to)
            let partner = table[partnerKey]
            switch timeouts.verdict(on: value, partner: partner, now: now) {
            case .keep:
                continue
            case .evictHalf:
                if try delete(key, value) { sweep.evicted += 1 }
            case .expire:
                // The pair goes together; its second entry in this walk then finds nothing left to delete.
                let deleted = try delete(key, value)
                let partnerDeleted = try partner.map { partner throws(BPFError) in try delete(partnerKey, partner) } ?? false
                if deleted || partnerDeleted { sweep.expired += 1 }
            }
        }
        return sweep
    }

    /// How many entries each connection table holds, of how many.
    public func occupancy() throws(BPFError) -> ConnectionTableOccupancy {
        let table = try natTable()
        let unconfirmed = table.values.filter { $0.flags & SP_NAT_UNCONFIRMED != 0 }.count
        let connections = table.values.filter { $0.flags & SP_NAT_REPLY_DIRECTION == 0 }.count
        return ConnectionTableOccupancy(connections: connections, confirmed: table.count - unconfirmed, unconfirmed: unconfirmed,
                                        confirmedCapacity: try natMap.maxEntries, unconfirmedCapacity: try unconfirmedNatMap.maxEntries)
    }

    /// Removes the connections a service translated to a backend that left it: the clients' next
    /// packets find no connection, and TCP is answered with a reset by the node.
    @discardableResult
    public func forget(_ departures: [(service: Service, backend: Backend)]) throws(BPFError) -> Int {
        guard !departures.isEmpty else { return 0 }
        let departed = Set(departures.map { "\($0.service.proto.rawValue) \($0.service.endpoint) \($0.backend.endpoint)" })
        var forgotten = 0
        for (key, value) in try natTable() where value.flags & SP_NAT_REPLY_DIRECTION == 0 {
            guard let connection = Self.connection(key, value, partner: nil, now: 0),
                  departed.contains("\(connection.proto.rawValue) \(connection.service) \(connection.backend.endpoint)") else { continue }
            let map = try table(holding: value)
            try map.delete(key)
            try map.delete(Self.reversed(value.to))
            forgotten += 1
        }
        return forgotten
    }

    /// Entries in the uplinks' connection tables, two per connection (a pair's half the LRU
    /// evicted counts alone).
    public func tableEntries() throws(BPFError) -> Int { try natTable().count }

    /// Both tables' entries; an entry moving from one to the other meanwhile may be seen twice,
    /// which the dictionary folds into one.
    private func natTable() throws(BPFError) -> [sp_tuple: sp_nat] {
        var table: [sp_tuple: sp_nat] = [:]
        for map in [try unconfirmedNatMap, try natMap] {
            for (key, value) in try map.batchedEntries() {
                table[key.withUnsafeBytes { $0.loadUnaligned(as: sp_tuple.self) }] = value.withUnsafeBytes { $0.loadUnaligned(as: sp_nat.self) }
            }
        }
        return table
    }

    /// The table an entry lives in: its flags say.
    private func table(holding entry: sp_nat) throws(BPFError) -> BPFMap {
        entry.flags & SP_NAT_UNCONFIRMED != 0 ? try unconfirmedNatMap : try natMap
    }

    private func delete(_ key: sp_tuple, _ entry: sp_nat) throws(BPFError) -> Bool { try table(holding: entry).delete(key) }

    static func closing(_ entry: sp_nat, _ partner: sp_nat?) -> Bool {
        entry.flags & SP_NAT_FIN != 0 && (partner?.flags ?? 0) & SP_NAT_FIN != 0
    }

    private static func connection(_ key: sp_tuple, _ value: sp_nat, partner: sp_nat?, now: UInt64) -> TranslatedConnection? {
        guard let proto = Service.TransportProtocol.allCases.first(where: { $0.number == key.proto }),
              let client = source(of: key), let service = destination(of: key), let backend = destination(of: value.to),
              let nodeSource = source(of: value.to) else { return nil }
        let lastSeen = max(value.last_seen_ns, partner?.last_seen_ns ?? 0)
        return TranslatedConnection(proto: proto, client: client.endpoint, service: service.endpoint,
                                    nodeSource: value.flags & SP_NAT_SNAT != 0 ? nodeSource.endpoint : nil, backend: backend,
                                    idleNanoseconds: now > lastSeen ? now - lastSeen : 0, closing: closing(value, partner),
                                    unconfirmed: value.flags & SP_NAT_UNCONFIRMED != 0)
    }

    /// The tuple of the other direction's packets.
    static func reversed(_ tuple: sp_tuple) -> sp_tuple {
        sp_tuple(saddr: tuple.daddr, daddr: tuple.saddr, sport: tuple.dport, dport: tuple.sport, proto: tuple.proto,
                 family: tuple.family, pad: (0, 0))
    }

    private static func source(of tuple: sp_tuple) -> Backend? {
        IPAddress(mapBytes: tuple.saddr, family: tuple.family).map { Backend(address: $0, port: UInt16(bigEndian: tuple.sport)) }
    }

    private static func destination(of tuple: sp_tuple) -> Backend? {
        IPAddress(mapBytes: tuple.daddr, family: tuple.family).map { Backend(address: $0, port: UInt16(bigEndian: tuple.dport)) }
    }

    /// CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns().
    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

extension sp_tuple: @retroactive Hashable {
    public static func == (lhs: sp_tuple, rhs: sp_tuple) -> Bool {
        withUnsafeBytes(of: lhs) { left in withUnsafeBytes(of: rhs) { right in left.elementsEqual(right) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: self) { hasher.combine(bytes: $0) }
    }
}

/// How many entries the uplinks' connection tables get when they are made: `confirmed` for
/// sp_nat, half as many for sp_nat_new (two entries per connection in each).
public struct ConnectionTableSize: Sendable, Equatable {
    public let confirmed: UInt32

    public var unconfirmed: UInt32 { max(confirmed / 2, Self.smallest / 2) }

    /// Between these: LRU maps are allocated up front, and the kernel refuses absurd sizes.
    public static let smallest: UInt32 = 1 << 15
    public static let largest: UInt32 = 1 << 22

    public init(confirmed: UInt32) { self.confirmed = min(max(confirmed, Self.smallest), Self.largest) }

    /// A quarter of a percent of the node's memory for sp_nat, at about 160 bytes an entry (key,
    /// value and the hash table's own), rounded down to a power of two; sp_nat_new takes half as
    /// much again. 262,144 entries (about 40 MiB, and 20 for sp_nat_new) on a 24 GiB node; the
    /// smallest size below 4 GiB.
    public static func fromMemory(bytes: UInt64 = physicalMemory()) -> ConnectionTableSize {
        let entries = bytes / 400 / 160
        return ConnectionTableSize(confirmed: entries == 0 ? smallest : UInt32(clamping: 1 << (63 - entries.leadingZeroBitCount)))
    }

    /// The maps the sizes are for, as BPFObjectLoader takes them.
    var sizes: [String: UInt32] { [DatapathMaps.nat: confirmed, DatapathMaps.natNew: unconfirmed] }
    static let maps: Set<String> = [DatapathMaps.nat, DatapathMaps.natNew]

    public static func physicalMemory() -> UInt64 {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && pageSize > 0 ? UInt64(pages) * UInt64(pageSize) : 0
    }
}
