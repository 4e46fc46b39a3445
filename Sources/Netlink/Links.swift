// SPDX-License-Identifier: Apache-2.0
import CLibMNL
import NetAddress
import Netns
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A network device as rtnetlink reports it.
public struct Link: Equatable, Sendable {
    public let index: Int32
    public let name: String
    public let mac: MACAddress?
    public let mtu: Int
    public let isUp: Bool
    /// The `IFLA_INFO_KIND` of virtual devices ("veth", ...), nil for physical ones.
    public let kind: String?
    /// For a veth, its peer's index in the peer's netns (`IFLA_LINK`).
    public let peerIndex: Int32?
}

extension NetlinkSocket {
    /// The device called `name`, or nil when there is none.
    public func link(named name: String) throws(SystemCallError) -> Link? {
        try getLink("get link \(name)") { $0.put(Int(IFLA_IFNAME), name) }
    }

    /// The device with index `index`, or nil when there is none.
    public func link(index: Int32) throws(SystemCallError) -> Link? {
        try getLink("get link #\(index)", index: index) { _ in }
    }

    private func getLink(_ operation: String, index: Int32 = 0,
                         _ build: (MessageBuilder) -> Void) throws(SystemCallError) -> Link? {
        do {
            let replies = try request(operation, type: Int(RTM_GETLINK), flags: 0) { message in
                message.family(ifinfomsg.self) { $0.ifi_family = UInt8(AF_UNSPEC); $0.ifi_index = index }
                build(message)
            }
            return replies.first.map(Self.parseLink)
        } catch where error.errno == .operationNotSupportedByDevice {  // ENODEV
            return nil
        }
    }

    static func parseLink(_ message: NetlinkMessage) -> Link {
        message.withContents(ifinfomsg.self) { header, attributes in
            Link(index: header.ifi_index,
                 name: attributes.string(Int(IFLA_IFNAME)) ?? "",
                 mac: attributes.bytes(Int(IFLA_ADDRESS)).flatMap { MACAddress(bytes: $0) },
                 mtu: Int(attributes.u32(Int(IFLA_MTU)) ?? 0),
                 isUp: header.ifi_flags & UInt32(IFF_UP.rawValue) != 0,
                 kind: attributes.nested(Int(IFLA_LINKINFO))?.string(Int(IFLA_INFO_KIND)),
                 peerIndex: attributes.u32(Int(IFLA_LINK)).map { Int32(bitPattern: $0) })
        }
    }

    /// Creates a veth pair in one request: `name` here, `peerName` directly in `peerNamespace`.
    /// Fails with EEXIST when either name is taken, leaving the existing devices alone.
    public func createVethPair(name: String, peerName: String, peerNamespace: NetworkNamespace,
                               mtu: Int) throws(SystemCallError) {
        try request("create veth \(name) with peer \(peerName)", type: Int(RTM_NEWLINK),
                    flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK) { message in
            message.family(ifinfomsg.self) { $0.ifi_family = UInt8(AF_UNSPEC) }
            message.put(Int(IFLA_IFNAME), name)
            message.put(Int(IFLA_MTU), UInt32(mtu))
            message.nest(Int(IFLA_LINKINFO)) {
                message.put(Int(IFLA_INFO_KIND), "veth")
                message.nest(Int(IFLA_INFO_DATA)) {
                    message.nest(Int(VETH_INFO_PEER)) {
                        message.family(ifinfomsg.self) { $0.ifi_family = UInt8(AF_UNSPEC) }
                        message.put(Int(IFLA_IFNAME), peerName)
                        message.put(Int(IFLA_MTU), UInt32(mtu))
                        message.put(Int(IFLA_NET_NS_FD), UInt32(bitPattern: peerNamespace.descriptor.rawValue))
                    }
                }
            }
        }
    }

    public func setUp(index: Int32) throws(SystemCallError) {
        try request("set link #\(index) up", type: Int(RTM_NEWLINK), flags: NLM_F_ACK) { message in
            message.family(ifinfomsg.self) {
                $0.ifi_family = UInt8(AF_UNSPEC)
                $0.ifi_index = index
                $0.ifi_change = UInt32(IFF_UP.rawValue)
                $0.ifi_flags = UInt32(IFF_UP.rawValue)
            }
        }
    }

    /// Takes the device down and into device group `group`, in one request: the kernel drops its
    /// routes and neighbour entries as it goes down.
    public func setDown(index: Int32, group: UInt32) throws(SystemCallError) {
        try request("set link #\(index) down into group \(group)", type: Int(RTM_NEWLINK), flags: NLM_F_ACK) { message in
            message.family(ifinfomsg.self) {
                $0.ifi_family = UInt8(AF_UNSPEC)
                $0.ifi_index = index
                $0.ifi_change = UInt32(IFF_UP.rawValue)
                $0.ifi_flags = 0
            }
            message.put(Int(IFLA_GROUP), group)
        }
    }

    /// Renames a device that is down (the kernel refuses to rename one that is up: EBUSY).
    public func rename(index: Int32, to name: String) throws(SystemCallError) {
        try request("rename link #\(index) to \(name)", type: Int(RTM_NEWLINK), flags: NLM_F_ACK) { message in
            message.family(ifinfomsg.self) { $0.ifi_family = UInt8(AF_UNSPEC); $0.ifi_index = index }
            message.put(Int(IFLA_IFNAME), name)
        }
    }

    /// Deletes every device of group `group` in one request, and so behind one set of grace
    /// periods however many there are. Returns false when the group has none.
    @discardableResult
    public func deleteGroup(_ group: UInt32) throws(SystemCallError) -> Bool {
        do {
            try request("delete link group \(group)", type: Int(RTM_DELLINK), flags: NLM_F_ACK) { message in
                message.family(ifinfomsg.self) { $0.ifi_family = UInt8(AF_UNSPEC) }
                message.put(Int(IFLA_GROUP), group)
            }
            return true
        } catch where error.errno == .operationNotSupportedByDevice {  // ENODEV
            return false
        }
    }

    /// Deletes the device (for a veth, both ends). Returns false when it was already gone.
    @discardableResult
    public func deleteLink(index: Int32) throws(SystemCallError) -> Bool {
        do {
            try request("delete link #\(index)", type: Int(RTM_DELLINK), flags: NLM_F_ACK) { message in
                message.family(ifinfomsg.self) { $0.ifi_family = UInt8(AF_UNSPEC); $0.ifi_index = index }
            }
            return true
        } catch where error.errno == .operationNotSupportedByDevice {  // ENODEV
            return false
        }
    }
}
