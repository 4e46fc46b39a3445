// SPDX-License-Identifier: Apache-2.0
import BPF
import CLibBPF
import NetAddress

/// What the store knows of one pod attachment: enough to undo it, check it and show it.
public struct EndpointRecord: Equatable, Sendable {
    public enum AddressSource: UInt8, Sendable {
        /// Leased by the built-in allocator: released through the store.
        case builtin = 1
        /// Leased by a delegated IPAM plugin: released by calling it with DEL.
        case delegated = 2
    }

    /// Where the attachment stands. ADD records it `pending` before it changes anything, so that
    /// DEL and GC can undo an ADD that died half-way, and makes it `ready` as its last step.
    public enum State: UInt8, Sendable {
        case ready = 0
        case pending = 1
    }

    public var containerID: String
    public var ifname: String
    public var network: String
    public var netns: String
    public var hostIndex: Int32
    public var hostName: String
    public var hostMAC: MACAddress
    public var podIndex: Int32
    public var podMAC: MACAddress
    public var mtu: Int
    public var addresses: [IPPrefix]
    public var addressSource: AddressSource
    /// Nanoseconds since the epoch, at ADD.
    public var created: UInt64
    /// How the datapath program is attached to the host end (1 tcx, 2 tc; 0 not attached).
    public var attachMode: UInt8
    /// The bpf_link id (tcx) or program id (tc) of that attachment.
    public var attachID: UInt32
    /// The cgroup whose socket hooks this pod brought (socketLB scope "pod"), by id; 0 for none.
    public var socketCgroupID: UInt64
    public var state: State

    public init(containerID: String, ifname: String, network: String, netns: String, hostIndex: Int32,
                hostName: String, hostMAC: MACAddress, podIndex: Int32, podMAC: MACAddress, mtu: Int,
                addresses: [IPPrefix], addressSource: AddressSource, created: UInt64,
                attachMode: UInt8 = 0, attachID: UInt32 = 0, socketCgroupID: UInt64 = 0, state: State = .ready) {
        self.containerID = containerID
        self.ifname = ifname
        self.network = network
        self.netns = netns
        self.hostIndex = hostIndex
        self.hostName = hostName
        self.hostMAC = hostMAC
        self.podIndex = podIndex
        self.podMAC = podMAC
        self.mtu = mtu
        self.addresses = addresses
        self.addressSource = addressSource
        self.created = created
        self.attachMode = attachMode
        self.attachID = attachID
        self.socketCgroupID = socketCgroupID
        self.state = state
    }

    /// The first record of an ADD: who it is for, nothing wired yet.
    public static func pending(containerID: String, ifname: String, network: String, netns: String, hostName: String,
                               addressSource: AddressSource, created: UInt64) -> EndpointRecord {
        EndpointRecord(containerID: containerID, ifname: ifname, network: network, netns: netns, hostIndex: 0, hostName: hostName,
                       hostMAC: .zero, podIndex: 0, podMAC: .zero, mtu: 0, addresses: [], addressSource: addressSource,
                       created: created, state: .pending)
    }

    public static let maxAddresses = 4
    public static let maxNetnsPathLength = 255
    public static let maxNetworkNameLength = 63

    static let keySize = 144
    static let valueSize = 512
    static let layout = BPFMap.Layout(name: "sp_endpoints", type: BPF_MAP_TYPE_HASH,
                                      keySize: keySize, valueSize: valueSize, maxEntries: 16384)

    static func key(containerID: String, ifname: String) -> [UInt8] {
        var writer = FixedWriter()
        writer.string(containerID, size: 128)
        writer.string(ifname, size: 16)
        return writer.bytes
    }

    var key: [UInt8] { Self.key(containerID: containerID, ifname: ifname) }

    var value: [UInt8] {
        var writer = FixedWriter()
        writer.string(network, size: 64)
        writer.string(netns, size: 256)
        writer.integer(hostIndex)
        writer.string(hostName, size: 16)
        writer.raw(hostMAC.bytes, size: 6)
        writer.raw(podMAC.bytes, size: 6)
        writer.integer(podIndex)
        writer.integer(UInt32(mtu))
        writer.integer(addressSource.rawValue)
        writer.integer(UInt8(addresses.count))
        for slot in 0..<Self.maxAddresses { writer.prefix(slot < addresses.count ? addresses[slot] : nil) }
        writer.integer(created)
        writer.integer(attachMode)
        writer.integer(attachID)
        writer.integer(socketCgroupID)
        writer.integer(state.rawValue)
        return writer.padded(to: Self.valueSize)
    }

    init?(key: [UInt8], value: [UInt8]) {
        var keys = FixedReader(key)
        var reader = FixedReader(value)
        containerID = keys.string(size: 128)
        ifname = keys.string(size: 16)
        network = reader.string(size: 64)
        netns = reader.string(size: 256)
        hostIndex = reader.integer()
        hostName = reader.string(size: 16)
        guard let hostMAC = MACAddress(bytes: reader.raw(size: 6)),
              let podMAC = MACAddress(bytes: reader.raw(size: 6)) else { return nil }
        self.hostMAC = hostMAC
        self.podMAC = podMAC
        podIndex = reader.integer()
        mtu = Int(reader.integer(UInt32.self))
        guard let source = AddressSource(rawValue: reader.integer()) else { return nil }
        addressSource = source
        let count = Int(reader.integer(UInt8.self))
        addresses = (0..<Self.maxAddresses).compactMap { _ in reader.prefix() }
        guard addresses.count == count else { return nil }
        created = reader.integer()
        attachMode = reader.integer()
        attachID = reader.integer()
        socketCgroupID = reader.integer()
        guard let state = State(rawValue: reader.integer()) else { return nil }
        self.state = state
    }
}

extension EndpointStore {
    /// Records a new attachment. Returns false when one with the same container and ifname exists.
    public func insert(_ record: EndpointRecord) throws(BPFError) -> Bool {
        try endpoints.insert(record.key, record.value)
    }

    /// Rewrites an existing record (after its attachment changed).
    public func update(_ record: EndpointRecord) throws(BPFError) {
        try endpoints.upsert(record.key, record.value)
    }

    public func record(containerID: String, ifname: String) throws(BPFError) -> EndpointRecord? {
        let key = EndpointRecord.key(containerID: containerID, ifname: ifname)
        return try endpoints.lookup(key).flatMap { EndpointRecord(key: key, value: $0) }
    }

    @discardableResult
    public func removeRecord(containerID: String, ifname: String) throws(BPFError) -> Bool {
        try endpoints.delete(EndpointRecord.key(containerID: containerID, ifname: ifname))
    }

    /// Every recorded attachment, oldest first.
    public func records() throws(BPFError) -> [EndpointRecord] {
        try endpoints.entries().compactMap { EndpointRecord(key: $0.key, value: $0.value) }.sorted { $0.created < $1.created }
    }

    /// The keys of the records that cannot be read (not written by any swiftpath): what
    /// `datapath status` reports and `datapath load` removes.
    public func undecodableRecords() throws(BPFError) -> [[UInt8]] {
        try endpoints.entries().filter { EndpointRecord(key: $0.key, value: $0.value) == nil }.map(\.key)
    }

    public func removeRecord(key: [UInt8]) throws(BPFError) {
        try endpoints.delete(key)
    }
}
