// SPDX-License-Identifier: Apache-2.0
import CLibMNL
import NetAddress
import Netns
import SystemCallSupport
#if canImport(Glibc)
import Glibc
#endif

/// A neighbour (ARP or ND) entry.
public struct Neighbour: Equatable, Sendable {
    public let address: IPAddress
    public let mac: MACAddress?
    public let index: Int32
    public let isPermanent: Bool
}

extension NetlinkSocket {
    /// Adds (or replaces) a permanent neighbour entry: `address` on device `index` is `mac`.
    public func addPermanentNeighbour(_ address: IPAddress, mac: MACAddress, index: Int32) throws(SystemCallError) {
        try request("add neighbour \(address) lladdr \(mac) dev #\(index)", type: Int(RTM_NEWNEIGH),
                    flags: NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK) { message in
            message.family(ndmsg.self) {
                $0.ndm_family = UInt8(address.family.addressFamily)
                $0.ndm_ifindex = index
                $0.ndm_state = UInt16(NUD_PERMANENT)
            }
            message.put(Int(NDA_DST), address.bytes)
            message.put(Int(NDA_LLADDR), mac.bytes)
        }
    }

    /// The neighbour entries of device `index`.
    public func neighbours(index: Int32) throws(SystemCallError) -> [Neighbour] {
        try request("dump neighbours", type: Int(RTM_GETNEIGH), flags: NLM_F_DUMP) { message in
            message.family(ndmsg.self) { $0.ndm_family = UInt8(AF_UNSPEC); $0.ndm_ifindex = index }
        }.compactMap { message in
            message.withContents(ndmsg.self) { header, attributes -> Neighbour? in
                guard header.ndm_ifindex == index,
                      let address = attributes.bytes(Int(NDA_DST)).flatMap({ IPAddress(bytes: $0) }) else { return nil }
                return Neighbour(address: address,
                                 mac: attributes.bytes(Int(NDA_LLADDR)).flatMap { MACAddress(bytes: $0) },
                                 index: header.ndm_ifindex,
                                 isPermanent: header.ndm_state & UInt16(NUD_PERMANENT) != 0)
            }
        }
    }
}
