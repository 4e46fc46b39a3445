// SPDX-License-Identifier: Apache-2.0
import CLibMNL
import NetAddress
import Netns
import SystemCallSupport
#if canImport(Glibc)
import Glibc
#endif

/// Who made a route (rtm_protocol): the kernel, an administrator, or a routing daemon's number.
/// A daemon touches only the routes of its own number.
public struct RouteProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let kernel = RouteProtocol(rawValue: UInt8(RTPROT_KERNEL))
    public static let boot = RouteProtocol(rawValue: UInt8(RTPROT_BOOT))
    public static let `static` = RouteProtocol(rawValue: UInt8(RTPROT_STATIC))
    /// Learned from a router advertisement.
    public static let routerAdvertisement = RouteProtocol(rawValue: UInt8(RTPROT_RA))

    public var description: String { "proto \(rawValue)" }
}

/// A route of the main table.
public struct Route: Equatable, Sendable, CustomStringConvertible {
    public let destination: IPPrefix
    public let gateway: IPAddress?
    public let outputIndex: Int32?
    /// The gateway is reachable on the device without a covering subnet route.
    public let onLink: Bool
    public let proto: RouteProtocol

    public init(destination: IPPrefix, gateway: IPAddress? = nil, outputIndex: Int32?, onLink: Bool = false,
                proto: RouteProtocol = .static) {
        self.destination = destination
        self.gateway = gateway
        self.outputIndex = outputIndex
        self.onLink = onLink
        self.proto = proto
    }

    public var description: String {
        "\(destination.network)/\(destination.length)" + (gateway.map { " via \($0)" } ?? "")
            + (outputIndex.map { " dev #\($0)" } ?? "") + (onLink ? " onlink" : "") + (proto == .static ? "" : " \(proto)")
    }
}

/// Where off-node traffic of one family goes, as one lookup can tell.
public enum OffNodeRoute: Equatable, Sendable {
    /// Nothing routes it.
    case unreachable
    /// The main table's default route, through one device.
    case `default`(Route)
    /// What one lookup cannot read as the default route: another table's route, a more specific
    /// one, several next hops.
    case unclear

    static let probe4 = IPAddress("198.18.0.1")!
    static let probe6 = IPAddress("2001:2::1")!
}

extension NetlinkSocket {
    public func addRoute(_ route: Route) throws(SystemCallError) {
        try request("add route \(route)", type: Int(RTM_NEWROUTE),
                    flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK) { message in
            Self.describe(route, in: message)
        }
    }

    /// Adds `route`, or replaces the main table's route to the same destination.
    public func replaceRoute(_ route: Route) throws(SystemCallError) {
        try request("replace route \(route)", type: Int(RTM_NEWROUTE),
                    flags: NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK) { message in
            Self.describe(route, in: message)
        }
    }

    /// Deletes the main table's route to `route.destination` of `route.proto`; a route already
    /// gone is no error.
    public func deleteRoute(_ route: Route) throws(SystemCallError) {
        do {
            try request("delete route \(route)", type: Int(RTM_DELROUTE), flags: NLM_F_ACK) { message in
                Self.describe(route, in: message, deleting: true)
            }
        } catch where error.errno == .noSuchProcess {
            return
        }
    }

    /// The unicast routes of the main table for `family` that `proto` made.
    public func routes(family: IPAddress.Family, madeBy proto: RouteProtocol) throws(SystemCallError) -> [Route] {
        try routes(family: family) { $0.rtm_protocol == proto.rawValue }
    }

    /// The request's route. A deletion says RT_SCOPE_NOWHERE, which the kernel reads as "any
    /// scope": the route to delete is found by its destination, protocol and gateway.
    static func describe(_ route: Route, in message: MessageBuilder, deleting: Bool = false) {
        let family = route.destination.family
        message.family(rtmsg.self) {
            $0.rtm_family = UInt8(family.addressFamily)
            $0.rtm_dst_len = UInt8(route.destination.length)
            $0.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
            $0.rtm_protocol = route.proto.rawValue
            $0.rtm_scope = UInt8(deleting ? RT_SCOPE_NOWHERE.rawValue
                                          : route.gateway == nil ? RT_SCOPE_LINK.rawValue : RT_SCOPE_UNIVERSE.rawValue)
            $0.rtm_type = UInt8(RTN_UNICAST)
            $0.rtm_flags = route.onLink ? UInt32(RTNH_F_ONLINK) : 0
        }
        if route.destination.length > 0 { message.put(Int(RTA_DST.rawValue), route.destination.network.bytes) }
        if let gateway = route.gateway { message.put(Int(RTA_GATEWAY.rawValue), gateway.bytes) }
        if let index = route.outputIndex { message.put(Int(RTA_OIF.rawValue), UInt32(index)) }
    }

    /// The unicast routes of the main table for `family`.
    public func routes(family: IPAddress.Family) throws(SystemCallError) -> [Route] {
        try routes(family: family) { _ in true }
    }

    /// The default routes of the main table for `family`. The dump still walks every route (the
    /// kernel cannot filter on the prefix length), but only defaults are copied and parsed: a
    /// node with one host route per pod does not make each ADD slower.
    public func defaultRoutes(family: IPAddress.Family) throws(SystemCallError) -> [Route] {
        try routes(family: family) { $0.rtm_dst_len == 0 }
    }

    /// The devices off-node traffic leaves by, IPv4's first, from one lookup per family; nil where
    /// a lookup cannot tell (see `OffNodeRoute`).
    public func offNodeLinks() throws(SystemCallError) -> [Link]? {
        var links: [Link] = []
        for family in [IPAddress.Family.v4, .v6] {
            switch try offNodeRoute(family: family) {
            case .unreachable: continue
            case .unclear: return nil
            case .default(let route):
                guard let index = route.outputIndex, let link = try link(index: index) else { return nil }
                if !links.contains(where: { $0.index == index }) { links.append(link) }
            }
        }
        return links
    }

    /// The devices that carry the node's default routes, IPv4's first, each once.
    public func defaultRouteLinks() throws(SystemCallError) -> [Link] {
        var links: [Link] = []
        for family in [IPAddress.Family.v4, .v6] {
            for route in try defaultRoutes(family: family) {
                guard let index = route.outputIndex, !links.contains(where: { $0.index == index }),
                      let link = try link(index: index) else { continue }
                links.append(link)
            }
        }
        return links
    }

    private func routes(family: IPAddress.Family, where keep: @escaping (rtmsg) -> Bool) throws(SystemCallError) -> [Route] {
        try request("dump routes", type: Int(RTM_GETROUTE), flags: NLM_F_DUMP, keeping: { message in
            message.pointee.nlmsg_type != UInt16(RTM_NEWROUTE)
                || keep(mnl_nlmsg_get_payload(message)!.loadUnaligned(as: rtmsg.self))
        }) { message in
            message.family(rtmsg.self) { $0.rtm_family = UInt8(family.addressFamily) }
        }.compactMap { Self.mainTableRoute($0, family: family) }
    }

    /// The route the kernel picks for `address` (RTM_F_FIB_MATCH: the FIB entry itself, prefix and
    /// all), or nil when nothing of the main table routes it. One lookup, however many routes the
    /// node holds.
    public func route(to address: IPAddress) throws(SystemCallError) -> Route? {
        let replies: [NetlinkMessage]
        do {
            replies = try request("look up the route to \(address)", type: Int(RTM_GETROUTE), flags: 0) { message in
                message.family(rtmsg.self) {
                    $0.rtm_family = UInt8(address.family.addressFamily)
                    $0.rtm_dst_len = UInt8(address.family == .v4 ? 32 : 128)
                    $0.rtm_flags = UInt32(RTM_F_FIB_MATCH)
                }
                message.put(Int(RTA_DST.rawValue), address.bytes)
            }
        } catch where error.errno == .networkUnreachable || error.errno == .noRouteToHost {
            return nil
        }
        return replies.first.flatMap { Self.mainTableRoute($0, family: address.family) }
    }

    /// Where off-node traffic of `family` goes, as one FIB lookup (RTM_F_FIB_MATCH) of an address
    /// of the family's benchmarking range (RFC 2544, RFC 5180) sees it: no node routes those on its
    /// own, so only a default route covers them. One request, however many routes the node holds.
    public func offNodeRoute(family: IPAddress.Family) throws(SystemCallError) -> OffNodeRoute {
        let probe = family == .v4 ? OffNodeRoute.probe4 : OffNodeRoute.probe6
        let replies: [NetlinkMessage]
        do {
            replies = try request("look up the route off the node", type: Int(RTM_GETROUTE), flags: 0) { message in
                message.family(rtmsg.self) {
                    $0.rtm_family = UInt8(family.addressFamily)
                    $0.rtm_dst_len = UInt8(family == .v4 ? 32 : 128)
                    $0.rtm_flags = UInt32(RTM_F_FIB_MATCH)
                }
                message.put(Int(RTA_DST.rawValue), probe.bytes)
            }
        } catch where error.errno == .networkUnreachable {
            return .unreachable
        }
        guard let reply = replies.first, !reply.withContents(rtmsg.self, { _, attributes in attributes[Int(RTA_MULTIPATH.rawValue)] != nil }),
              let route = Self.mainTableRoute(reply, family: family), route.destination.length == 0, route.outputIndex != nil else {
            return .unclear
        }
        return .default(route)
    }

    private static func mainTableRoute(_ message: NetlinkMessage, family: IPAddress.Family) -> Route? {
        message.withContents(rtmsg.self) { header, attributes -> Route? in
            let table = attributes.u32(Int(RTA_TABLE.rawValue)) ?? UInt32(header.rtm_table)
            guard table == RT_TABLE_MAIN.rawValue, header.rtm_type == UInt8(RTN_UNICAST) else { return nil }
            let destination = attributes.bytes(Int(RTA_DST.rawValue)).flatMap { IPAddress(bytes: $0) }
                ?? IPAddress(family: family, value: 0)
            guard let prefix = IPPrefix(address: destination, length: Int(header.rtm_dst_len)) else { return nil }
            return Route(destination: prefix,
                         gateway: attributes.bytes(Int(RTA_GATEWAY.rawValue)).flatMap { IPAddress(bytes: $0) },
                         outputIndex: attributes.u32(Int(RTA_OIF.rawValue)).map { Int32(bitPattern: $0) },
                         onLink: header.rtm_flags & UInt32(RTNH_F_ONLINK) != 0,
                         proto: RouteProtocol(rawValue: header.rtm_protocol))
        }
    }
}
