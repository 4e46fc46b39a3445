// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CDatapathABI
import NetAddress
import NFTables
import SystemCallSupport

/// Masquerading: the programs hand traffic for destinations outside the cluster CIDRs to the
/// stack (counted as stack_masquerade), where one nftables table swiftpath owns rewrites its source.
extension NodeDatapath {
    public static let nftTable = "swiftpath"

    /// Makes the node's masquerading what the config says. Cheap when nothing changed (one map
    /// lookup and one trie walk); otherwise rewrites the maps and the nftables table.
    public func configureMasquerade(enabled: Bool, clusterCIDRs: [IPPrefix]) throws(DatapathError) {
        let node = try bpf { () throws(BPFError) in try nodeConfig.lookup(UInt32(0), as: sp_node_config.self) } ?? sp_node_config()
        let wasEnabled = node.flags & SP_NODE_MASQUERADE != 0
        let current = try bpf { () throws(BPFError) in try clusterPrefixes() }
        let wanted = Set(clusterCIDRs.map { IPPrefix(address: $0.network, length: $0.length)! })
        guard wasEnabled != enabled || (enabled && current != wanted) else { return }

        if enabled {
            try nftables { () throws(NFTablesError) in
                try NFTables.replaceMasquerade(table: Self.nftTable, clusterCIDRs: wanted.sorted { $0.description < $1.description })
            }
        }
        try bpf { () throws(BPFError) in
            for prefix in current.subtracting(wanted) { try removeClusterPrefix(prefix) }
            for prefix in wanted.subtracting(current) { try addClusterPrefix(prefix) }
            try nodeConfig.upsert(UInt32(0), sp_node_config(flags: enabled ? SP_NODE_MASQUERADE : 0, reserved: 0))
        }
        if !enabled && wasEnabled { try nftables { () throws(NFTablesError) in try NFTables.deleteTable(Self.nftTable) } }
    }

    /// Writes the masquerade table again when it is not what the datapath's masquerading needs:
    /// removed or changed by someone else (Debian's nftables.service flushes the whole ruleset).
    /// Returns whether it had to. Spawns nft: for the agent's resyncs, not for every ADD.
    public func restoreMasqueradeTable() throws(DatapathError) -> Bool {
        guard masqueradeEnabled else { return false }
        let wanted = try bpf { () throws(BPFError) in try clusterPrefixes() }.sorted { $0.description < $1.description }
        guard !NFTables.masqueradeMatches(table: Self.nftTable, clusterCIDRs: wanted) else { return false }
        try nftables { () throws(NFTablesError) in try NFTables.replaceMasquerade(table: Self.nftTable, clusterCIDRs: wanted) }
        return true
    }

    /// Makes the cluster's node addresses (never masqueraded) exactly `addresses`. Returns whether
    /// anything changed.
    @discardableResult
    public func setClusterNodeAddresses(_ addresses: Set<IPAddress>) throws(BPFError) -> Bool {
        try replaceAddressSet(try nodes4, try nodes6, with: addresses)
    }

    public func clusterNodeAddresses() throws(BPFError) -> Set<IPAddress> { try addressSet(try nodes4, try nodes6) }

    /// Makes this node's own addresses (refused as a source from outside) exactly `addresses`.
    /// Returns whether anything changed.
    @discardableResult
    public func setOwnAddresses(_ addresses: Set<IPAddress>) throws(BPFError) -> Bool {
        try replaceAddressSet(try local4, try local6, with: addresses)
    }

    public func ownAddresses() throws(BPFError) -> Set<IPAddress> { try addressSet(try local4, try local6) }

    /// A set of addresses kept in a pair of hash maps (IPv4 by its four bytes, IPv6 as sp_addr6).
    private func replaceAddressSet(_ map4: BPFMap, _ map6: BPFMap, with addresses: Set<IPAddress>) throws(BPFError) -> Bool {
        let current = try addressSet(map4, map6)
        for address in current.subtracting(addresses) {
            if address.isIPv4 { try map4.delete(address.ipv4Key) } else { try map6.delete(address.ipv6Key) }
        }
        for address in addresses.subtracting(current) {
            if address.isIPv4 { try map4.upsert(address.ipv4Key, UInt8(1)) } else { try map6.upsert(address.ipv6Key, UInt8(1)) }
        }
        return current != addresses
    }

    private func addressSet(_ map4: BPFMap, _ map6: BPFMap) throws(BPFError) -> Set<IPAddress> {
        Set(try map4.keys(as: UInt32.self).map(IPAddress.init(ipv4Key:)) + map6.keys(as: sp_addr6.self).map(IPAddress.init(ipv6Key:)))
    }

    public var masqueradeEnabled: Bool {
        ((try? nodeConfig.lookup(UInt32(0), as: sp_node_config.self))??.flags ?? 0) & SP_NODE_MASQUERADE != 0
    }

    func clusterPrefixes() throws(BPFError) -> Set<IPPrefix> {
        var prefixes = Set<IPPrefix>()
        for key in try cluster4.keys(as: sp_lpm4.self) {
            let bytes = withUnsafeBytes(of: key.addr) { Array($0) }
            prefixes.insert(IPPrefix(address: IPAddress(bytes: bytes)!, length: Int(key.prefixlen))!)
        }
        for var key in try cluster6.keys(as: sp_lpm6.self) {
            let bytes = withUnsafeBytes(of: &key.addr) { Array($0) }
            prefixes.insert(IPPrefix(address: IPAddress(bytes: bytes)!, length: Int(key.prefixlen))!)
        }
        return prefixes
    }

    private func addClusterPrefix(_ prefix: IPPrefix) throws(BPFError) {
        if prefix.family == .v4 { try cluster4.upsert(lpm4(prefix), UInt8(1)) } else { try cluster6.upsert(lpm6(prefix), UInt8(1)) }
    }

    private func removeClusterPrefix(_ prefix: IPPrefix) throws(BPFError) {
        if prefix.family == .v4 { try cluster4.delete(lpm4(prefix)) } else { try cluster6.delete(lpm6(prefix)) }
    }

    private func lpm4(_ prefix: IPPrefix) -> sp_lpm4 {
        sp_lpm4(prefixlen: UInt32(prefix.length), addr: prefix.network.ipv4Key)
    }

    private func lpm6(_ prefix: IPPrefix) -> sp_lpm6 {
        var key = sp_lpm6()
        key.prefixlen = UInt32(prefix.length)
        withUnsafeMutableBytes(of: &key.addr) { $0.copyBytes(from: prefix.network.bytes) }
        return key
    }
}

/// Runs nftables work inside a function that throws DatapathError.
func nftables(_ body: () throws(NFTablesError) -> Void) throws(DatapathError) {
    do { try body() } catch { throw .masquerade(error) }
}
