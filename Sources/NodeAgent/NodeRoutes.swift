// SPDX-License-Identifier: Apache-2.0
import KubernetesAPI
import NetAddress
import Netlink
import SystemCallSupport

/// Routes to the other nodes' pods (native routing, no encapsulation): for each other Node, a
/// route to each of its pod CIDRs via its InternalIP of that family. The programs' FIB lookup
/// then sends pod traffic for another node straight out of the uplink. The routes carry
/// swiftpath's own routing protocol number, so that only they are ever replaced or removed.
public enum NodeRoutes {
    /// rtm_protocol of swiftpath's routes (`ip route show proto 157`): a number no routing daemon
    /// in iproute2's rt_protos list uses.
    public static let proto = RouteProtocol(rawValue: 157)

    /// The routes `nodes` call for on node `ownName`. A CIDR whose node has no InternalIP of its
    /// family gets none; nor does one broader than /8 or /16 (a default route, or a pair of /1s),
    /// or, when the cluster's CIDRs are known, one outside them: a Node object must not steer the
    /// node's other traffic.
    public static func desired(nodes: [Node], ownName: String, clusterCIDRs: [IPPrefix] = []) -> [Route] {
        var routes: [Route] = []
        for node in nodes.sorted(by: { $0.metadata.name < $1.metadata.name }) where node.metadata.name != ownName {
            let addresses = node.internalIPs.compactMap { IPAddress($0) }
            for cidr in node.podCIDRs.compactMap({ IPPrefix($0) }) where cidr.length >= minimumLength(cidr.family) {
                guard clusterCIDRs.isEmpty || clusterCIDRs.contains(where: { $0.contains(cidr) }) else { continue }
                guard let via = addresses.first(where: { $0.family == cidr.family }) else { continue }
                routes.append(Route(destination: IPPrefix(address: cidr.network, length: cidr.length)!, gateway: via,
                                    outputIndex: nil, proto: proto))
            }
        }
        return routes
    }

    /// The broadest pod CIDR a node may have a route to: kube-controller-manager hands out /24 and
    /// /64 by default; anything near a default route (a /1 pair covers everything) is refused.
    static func minimumLength(_ family: IPAddress.Family) -> Int { family == .v4 ? 8 : 16 }

    /// The pod CIDRs of other nodes that `desired` refuses: what the operator should hear about
    /// (a --cluster-cidr that misses the cluster's own ranges, or a Node object that lies).
    public static func refused(nodes: [Node], ownName: String, clusterCIDRs: [IPPrefix]) -> [String] {
        nodes.filter { $0.metadata.name != ownName }.flatMap { node in
            node.podCIDRs.compactMap { IPPrefix($0) }
                .filter { cidr in
                    cidr.length < minimumLength(cidr.family) || !(clusterCIDRs.isEmpty || clusterCIDRs.contains { $0.contains(cidr) })
                }
                .map { "\(node.metadata.name): \($0)" }
        }.sorted()
    }

    /// What changed on the node.
    public struct Outcome: Equatable, Sendable {
        public var added = 0
        public var replaced = 0
        public var removed = 0
        public var owned = 0
        /// Destinations another route (the operator's, a routing daemon's) holds: left to it.
        public var foreign: [IPPrefix] = []
        /// Routes the kernel refused (a gateway not on one of the node's links, say), with why:
        /// each node's route stands or falls on its own.
        public var failed: [(route: Route, error: SystemCallError)] = []

        public static func == (lhs: Self, rhs: Self) -> Bool {
            (lhs.added, lhs.replaced, lhs.removed, lhs.owned, lhs.foreign) == (rhs.added, rhs.replaced, rhs.removed, rhs.owned, rhs.foreign)
                && lhs.failed.map(\.route.destination) == rhs.failed.map(\.route.destination)
        }
    }

    /// Makes swiftpath's routes exactly `desired`: a route of another destination or gateway is
    /// replaced, one no longer wanted removed, one already right left alone. A route swiftpath
    /// did not make is never replaced: its destination is reported in `foreign`.
    public static func reconcile(_ desired: [Route], netlink: NetlinkSocket) throws(SystemCallError) -> Outcome {
        var outcome = Outcome()
        let current = try netlink.routes(family: .v4, madeBy: proto) + netlink.routes(family: .v6, madeBy: proto)
        let wanted = Dictionary(desired.map { ($0.destination, $0) }, uniquingKeysWith: { first, _ in first })
        let existingAt = Dictionary(current.map { ($0.destination, $0) }, uniquingKeysWith: { first, _ in first })
        for route in current where wanted[route.destination] == nil {
            do throws(SystemCallError) {
                try netlink.deleteRoute(route)
                outcome.removed += 1
            } catch {
                outcome.failed.append((route, error))
            }
        }
        for route in wanted.values.sorted(by: { ($0.destination.address, $0.destination.length) < ($1.destination.address, $1.destination.length) }) {
            let existing = existingAt[route.destination]
            if existing?.gateway == route.gateway, existing != nil { continue }
            do throws(SystemCallError) {
                if existing != nil {
                    try netlink.replaceRoute(route)
                    outcome.replaced += 1
                } else {
                    try netlink.addRoute(route)
                    outcome.added += 1
                }
            } catch where error.errno == .fileExists && existing == nil {
                outcome.foreign.append(route.destination)
            } catch {
                outcome.failed.append((route, error))
            }
        }
        outcome.owned = wanted.count - outcome.foreign.count - outcome.failed.filter { wanted[$0.route.destination] != nil }.count
        return outcome
    }

    /// Removes every route of swiftpath's (uninstall).
    public static func removeAll(netlink: NetlinkSocket) throws(SystemCallError) -> Int {
        try reconcile([], netlink: netlink).removed
    }
}
