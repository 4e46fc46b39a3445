// SPDX-License-Identifier: Apache-2.0
import NetAddress

/// Which of a Service's external addresses (`spec.externalIPs`, `status.loadBalancer.ingress[].ip`)
/// the agent programs. Whoever may create a Service writes its external IPs, and the socket hooks
/// and the uplinks answer for them for every pod and node process: unchecked, a tenant could claim
/// a node's address, a pod's or another Service's, or any address on the Internet, and take the
/// traffic of pods and of the node's own processes, kubelet's included (CVE-2020-8554).
struct ServiceAddressPolicy: Equatable, Sendable {
    /// Where `spec.externalIPs` may lie; empty: nowhere, as the DenyServiceExternalIPs admission
    /// plugin advises for clusters that have no use for them.
    var externalIPRanges: [IPPrefix] = []
    /// Every Node's InternalIP and ExternalIP addresses, and this node's own interface addresses.
    var nodeAddresses: Set<IPAddress> = []
    /// The cluster's pod and service ranges: the cluster CIDRs, every Node's pod CIDRs, the
    /// service CIDRs when configured.
    var clusterRanges: [IPPrefix] = []
    /// The API server's address the agent was given, when it is one (not a host name).
    var controlPlaneAddresses: Set<IPAddress> = []

    enum Kind: String, Sendable {
        case externalIP
        case loadBalancerIP
    }

    /// Why an address is not programmed; the metric's label.
    enum Reason: String, CaseIterable, Sendable {
        /// An external IP outside the ranges the operator allows.
        case notAllowed = "not_allowed"
        case nodeAddress = "node_address"
        case clusterRange = "cluster_range"
        /// A Service's cluster IP (found in the Services, not in a range).
        case clusterIP = "cluster_ip"
        /// Loopback, link-local, multicast, unspecified, broadcast, reserved, IPv4-mapped.
        case special
        /// An API server's (the endpoints of `default/kubernetes`, the one the agent talks to).
        case controlPlane = "control_plane"
        /// A LoadBalancer's ingress IP on this port holds it (a controller assigned it).
        case taken
        /// Other Services claim it on the same port as an external IP too: none gets it, since no
        /// claim written by a tenant outranks another's.
        case contested
        /// Its Service lists more source ranges than the uplinks hold for one address: no client
        /// outside the node gets in.
        case tooManySourceRanges = "too_many_source_ranges"
    }

    struct Refusal: Hashable, Sendable, CustomStringConvertible {
        var address: IPAddress
        var kind: Kind
        var reason: Reason
        var description: String { "\(kind.rawValue) \(address): \(reason.rawValue)" }
    }

    /// Why `address` must not be programmed as a `kind` address; nil: it may.
    func refusal(of address: IPAddress, as kind: Kind) -> Reason? {
        if Self.special.contains(where: { $0.contains(address) }) { return .special }
        if nodeAddresses.contains(address) { return .nodeAddress }
        if clusterRanges.contains(where: { $0.contains(address) }) { return .clusterRange }
        // LoadBalancer IPs are not held to the allow-list: the cloud's controller writes them into
        // the Service's status, which tenants cannot write (the status subresource is RBAC'd apart
        // from the Service), and the operator rarely knows the cloud's address pools in advance.
        // What no load balancer may claim either, a node's or the cluster's own addresses, is
        // refused above.
        if kind == .externalIP, !externalIPRanges.contains(where: { $0.contains(address) }) { return .notAllowed }
        return nil
    }

    /// Addresses that never name a service reachable from elsewhere, or that the hooks would take
    /// for another address: 0.0.0.0/8 (unspecified, "this network"), 127/8, 169.254/16, 224/4
    /// multicast, 240/4 reserved with the broadcast address; ::, ::1, IPv4-mapped ::ffff:0:0/96
    /// (the hooks see an IPv4 address through it, past the IPv4 refusals), fe80::/10, ff00::/8.
    static let special: [IPPrefix] = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
                                      "::/128", "::1/128", "::ffff:0:0/96", "fe80::/10", "ff00::/8"].map { IPPrefix($0)! }
}
