// SPDX-License-Identifier: Apache-2.0
import BPF
import CLibBPF
import NetAddress

/// An address the built-in allocator handed out, and to whom.
public struct Lease: Equatable, Sendable {
    public var network: String
    public var address: IPAddress
    public var containerID: String
    public var ifname: String

    static let layout = BPFMap.Layout(name: "sp_ip_leases", type: BPF_MAP_TYPE_HASH,
                                      keySize: 32, valueSize: 208, maxEntries: 65536)
    /// Per network and range: the last address handed out, where the next search starts.
    static let cursorLayout = BPFMap.Layout(name: "sp_ip_cursors", type: BPF_MAP_TYPE_HASH,
                                            keySize: 32, valueSize: 24, maxEntries: 1024)

    static func key(network: String, address: IPAddress) -> [UInt8] {
        var writer = FixedWriter()
        writer.integer(fnv1a64(network))
        writer.address(address)
        return writer.padded(to: layout.keySize)
    }

    var value: [UInt8] {
        var writer = FixedWriter()
        writer.string(containerID, size: 128)
        writer.string(ifname, size: 16)
        writer.string(network, size: 64)
        return writer.padded(to: Self.layout.valueSize)
    }

    init(network: String, address: IPAddress, containerID: String, ifname: String) {
        self.network = network
        self.address = address
        self.containerID = containerID
        self.ifname = ifname
    }

    init?(key: [UInt8], value: [UInt8]) {
        var keys = FixedReader(key)
        var reader = FixedReader(value)
        _ = keys.integer(UInt64.self)
        guard let address = keys.address() else { return nil }
        self.address = address
        containerID = reader.string(size: 128)
        ifname = reader.string(size: 16)
        network = reader.string(size: 64)
    }

    static func cursorKey(network: String, range: IPPrefix) -> [UInt8] {
        var writer = FixedWriter()
        writer.integer(fnv1a64(network))
        writer.prefix(range)
        return writer.padded(to: cursorLayout.keySize)
    }
}

extension EndpointStore {
    /// Leases `address` to the attachment unless it is taken. Atomic without the lock.
    public func lease(_ address: IPAddress, network: String, containerID: String, ifname: String) throws(BPFError) -> Bool {
        let lease = Lease(network: network, address: address, containerID: containerID, ifname: ifname)
        return try leases.insert(Lease.key(network: network, address: address), lease.value)
    }

    public func leaseHolder(_ address: IPAddress, network: String) throws(BPFError) -> Lease? {
        let key = Lease.key(network: network, address: address)
        return try leases.lookup(key).flatMap { Lease(key: key, value: $0) }
    }

    @discardableResult
    public func release(_ address: IPAddress, network: String) throws(BPFError) -> Bool {
        try leases.delete(Lease.key(network: network, address: address))
    }

    /// Every lease of `network` (of every network when nil).
    public func leases(network: String? = nil) throws(BPFError) -> [Lease] {
        try leases.entries().compactMap { Lease(key: $0.key, value: $0.value) }
            .filter { network == nil || $0.network == network }
    }

    public func cursor(network: String, range: IPPrefix) throws(BPFError) -> IPAddress? {
        try cursors.lookup(Lease.cursorKey(network: network, range: range)).flatMap {
            var reader = FixedReader($0)
            return reader.address()
        }
    }

    public func setCursor(_ address: IPAddress, network: String, range: IPPrefix) throws(BPFError) {
        var writer = FixedWriter()
        writer.address(address)
        try cursors.upsert(Lease.cursorKey(network: network, range: range), writer.padded(to: Lease.cursorLayout.valueSize))
    }
}
