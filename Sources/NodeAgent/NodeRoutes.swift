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
    /// family gets none.
    public static func desired(nodes: [Node], ownName: String) -> [Route] {
        var routes: [Route] = []
        for node in nodes.sorted(by: { $0.metadata.name < $1.metadata.name }) where node.metadata.name != ownName {
            let addresses = node.internalIPs.compactMap { IPAddress($0) }
            for cidr in node.podCIDRs.compactMap({ IPPrefix($0) }) {
                guard let via = addresses.first(where: { $0.family == cidr.family }) else { continue }
                routes.append(Route(destination: IPPrefix(address: cidr.network, length: cidr.length)!, gateway: via,
                                    outputIndex: nil, proto: proto))
            }
        }
        return routes
    }

    /// What changed on the node.
    public struct Outcome: Equatable, Sendable {
        public var added = 0
        public var replaced = 0
        public var removed = 0
        public var owned = 0
    }

    /// Makes swiftpath's routes exactly `desired`: a route of another destination or gateway is
    /// replaced, one no longer wanted removed, one already right left alone.
    public static func reconcile(_ desired: [Route], netlink: NetlinkSocket) throws(SystemCallError) -> Outcome {
        var outcome = Outcome()
        let current = try netlink.routes(family: .v4, madeBy: proto) + netlink.routes(family: .v6, madeBy: proto)
        let wanted = Dictionary(desired.map { ($0.destination, $0) }, uniquingKeysWith: { first, _ in first })
        for route in current where wanted[route.destination] == nil {
            try netlink.deleteRoute(route)
            outcome.removed += 1
        }
        for route in wanted.values.sorted(by: { $0.destination.description < $1.destination.description }) {
            let existing = current.first { $0.destination == route.destination }
            if existing?.gateway == route.gateway, existing != nil { continue }
            try netlink.replaceRoute(route)
            if existing == nil { outcome.added += 1 } else { outcome.replaced += 1 }
        }
        outcome.owned = wanted.count
        return outcome
    }

    /// Removes every route of swiftpath's (uninstall).
    public static func removeAll(netlink: NetlinkSocket) throws(SystemCallError) -> Int {
        try reconcile([], netlink: netlink).removed
    }
}
