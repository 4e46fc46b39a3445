// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import CDatapathABI
import NetAddress

extension PodAttachments {
    /// Makes `addresses` known to the datapath as the pod behind host device `hostIndex`, and the
    /// device as the pod's (for what it sends from addresses no map holds: link-local, unspecified).
    /// Done before the pod's link is attached, so its first packet is already recognised.
    public func addEndpoint(addresses: [IPAddress], hostIndex: Int32, podMAC: MACAddress, hostMAC: MACAddress) throws(BPFError) {
        let value = sp_endpoint(ifindex: hostIndex, podMAC: podMAC, hostMAC: hostMAC)
        try podDevices.upsert(UInt32(bitPattern: hostIndex), value)
        for address in addresses {
            if address.family == .v4 { try endpoints4.upsert(address.ipv4Key, value) } else { try endpoints6.upsert(address.ipv6Key, value) }
        }
    }

    /// Forgets `addresses`, but only where they still point at `hostIndex` (an address already
    /// handed to another pod stays), the device's entry and its counters.
    public func removeEndpoint(addresses: [IPAddress], hostIndex: Int32) throws(BPFError) {
        for address in addresses {
            let map = try address.family == .v4 ? endpoints4 : endpoints6
            let current = address.family == .v4 ? try map.lookup(address.ipv4Key, as: sp_endpoint.self)
                                                 : try map.lookup(address.ipv6Key, as: sp_endpoint.self)
            guard current?.ifindex == UInt32(hostIndex) else { continue }
            if address.family == .v4 { try map.delete(address.ipv4Key) } else { try map.delete(address.ipv6Key) }
        }
        try podDevices.delete(UInt32(bitPattern: hostIndex))
        try forgetCounters(ifindex: hostIndex)
    }

    /// The endpoint entry of `address`: the host device index and MACs the datapath delivers with.
    public func endpoint(_ address: IPAddress) throws(BPFError) -> (hostIndex: Int32, podMAC: MACAddress, hostMAC: MACAddress)? {
        let entry = address.family == .v4 ? try endpoints4.lookup(address.ipv4Key, as: sp_endpoint.self)
                                          : try endpoints6.lookup(address.ipv6Key, as: sp_endpoint.self)
        guard var entry else { return nil }
        let pod = withUnsafeBytes(of: &entry.pod_mac) { MACAddress(bytes: $0)! }
        let host = withUnsafeBytes(of: &entry.host_mac) { MACAddress(bytes: $0)! }
        return (Int32(entry.ifindex), pod, host)
    }

    /// Brings recorded pods back onto the datapath after it was unloaded or rebuilt: map entries
    /// for every record, and an attachment for every pod whose host end has none. Returns the
    /// records of the pods attached anew, updated with their attachment.
    public func restore(_ records: [EndpointRecord], hostIndexExists: (Int32, String) -> Bool,
                        policy: AttachPolicy) throws(BPFError) -> [EndpointRecord] {
        var attached: [EndpointRecord] = []
        for record in records where hostIndexExists(record.hostIndex, record.hostName) {
            try addEndpoint(addresses: record.addresses.map(\.address), hostIndex: record.hostIndex,
                            podMAC: record.podMAC, hostMAC: record.hostMAC)
            let mode = AttachMode(rawValue: record.attachMode) ?? .tcx
            if try podAttachment(hostName: record.hostName, hostIndex: record.hostIndex, mode: mode) == nil {
                let attachment = try attachPod(hostName: record.hostName, hostIndex: record.hostIndex, policy: policy)
                var updated = record
                updated.attachMode = attachment.mode.rawValue
                updated.attachID = attachment.id
                attached.append(updated)
            }
        }
        return attached
    }

    /// Removes the endpoint and device entries that no record accounts for (a record lost, a
    /// crash between the maps and the store, a map refilled from records that were gone), and
    /// returns how many. The maps are read before `records`, and every ADD records an address
    /// and device before it writes their entries: an entry written meanwhile is always recorded.
    /// An entry that changed since it was read is left alone.
    public func forgetUnrecordedEndpoints(records: () throws(BPFError) -> [EndpointRecord]) throws(BPFError) -> Int {
        struct Entry: Hashable {
            let address: IPAddress
            let hostIndex: Int32
        }
        var seen: [Entry] = []
        for key in try endpoints4.keys(as: UInt32.self) {
            if let entry = try endpoints4.lookup(key, as: sp_endpoint.self) {
                seen.append(Entry(address: IPAddress(ipv4Key: key), hostIndex: Int32(bitPattern: entry.ifindex)))
            }
        }
        for key in try endpoints6.keys(as: sp_addr6.self) {
            if let entry = try endpoints6.lookup(key, as: sp_endpoint.self) {
                seen.append(Entry(address: IPAddress(ipv6Key: key), hostIndex: Int32(bitPattern: entry.ifindex)))
            }
        }
        let seenDevices = try podDevices.keys(as: UInt32.self)

        let recorded = try records().filter { $0.hostIndex != 0 }
        let recordedEntries = Set(recorded.flatMap { record in record.addresses.map { Entry(address: $0.address, hostIndex: record.hostIndex) } })
        let recordedDevices = Set(recorded.map { UInt32(bitPattern: $0.hostIndex) })

        var forgotten = 0
        for entry in seen where !recordedEntries.contains(entry) {
            let address = entry.address
            guard try endpoint(address)?.hostIndex == entry.hostIndex else { continue }
            let removed = address.family == .v4 ? try endpoints4.delete(address.ipv4Key) : try endpoints6.delete(address.ipv6Key)
            if removed { forgotten += 1 }
        }
        for device in seenDevices where !recordedDevices.contains(device) {
            if try podDevices.delete(device) { forgotten += 1 }
        }
        return forgotten
    }

    /// How many addresses the endpoint maps hold, per family.
    public func endpointCounts() throws(BPFError) -> (v4: Int, v6: Int) {
        (try endpoints4.keys(as: UInt32.self).count, try endpoints6.keys(as: sp_addr6.self).count)
    }

    /// Rebuilds the endpoint maps from the records (after a layout change created them empty):
    /// every attachment that has its veth, an ADD at work included.
    func refillEndpoints(from records: [EndpointRecord]) throws(BPFError) {
        for record in records where record.hostIndex != 0 {
            try addEndpoint(addresses: record.addresses.map(\.address), hostIndex: record.hostIndex,
                            podMAC: record.podMAC, hostMAC: record.hostMAC)
        }
    }

    func forgetCounters(ifindex: Int32) throws(BPFError) {
        let counters = try map(Layouts.counters)
        for path in PacketPath.allCases {
            try counters.delete(sp_counter_key(ifindex: UInt32(ifindex), path: path.rawValue))
        }
    }
}
