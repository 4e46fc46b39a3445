// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import NetAddress

public typealias Attachment = NetworkConfig.Attachment

/// Where a pod's addresses come from: the built-in allocator or a delegated IPAM plugin.
/// Both answer with the `ips`, `routes` and `dns` of a CNI result.
public protocol AddressManager {
    var source: EndpointRecord.AddressSource { get }
    func allocate(for attachment: Attachment) throws(CNIError) -> CNIResult
    /// Releases what `attachment` holds; `addresses` are the ones the store recorded, when it has them.
    func release(for attachment: Attachment, addresses: [IPAddress]?) throws(CNIError)
    func check(for attachment: Attachment, expecting addresses: [IPAddress]) throws(CNIError)
    /// Releases every lease not held by one of `valid`; `stale` are attachments GC already knows gone.
    func collectGarbage(keeping valid: Set<Attachment>, stale: [Attachment]) throws(CNIError)
    /// Fails with code 50 when an ADD could not get addresses now.
    func status() throws(CNIError)
}

extension AddressManager {
    /// The gateway of each family in `result`: the one IPAM named, or the link-local default.
    public static func gateways(of result: CNIResult) -> [IPAddress.Family: IPAddress] {
        var gateways: [IPAddress.Family: IPAddress] = [:]
        for ip in result.ips where gateways[ip.address.family] == nil {
            gateways[ip.address.family] = ip.gateway ?? defaultGateway(ip.address.family)
        }
        return gateways
    }
}

/// The next hop a pod uses when IPAM names none: an address nobody owns, resolved by a permanent
/// neighbour entry to the host end of the veth.
public func defaultGateway(_ family: IPAddress.Family) -> IPAddress {
    family == .v4 ? IPAddress("169.254.1.1")! : IPAddress("fe80::1")!
}
