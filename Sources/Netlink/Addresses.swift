// SPDX-License-Identifier: Apache-2.0
import CLibMNL
import NetAddress
import Netns
import SystemCallSupport
#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSocket {
    /// Adds `prefix` to device `index`. IPv6 addresses skip duplicate address detection, so they
    /// are usable at once: the pod's addresses come from IPAM, which already made them unique.
    public func addAddress(_ prefix: IPPrefix, index: Int32) throws(SystemCallError) {
        try request("add address \(prefix) to link #\(index)", type: Int(RTM_NEWADDR),
                    flags: NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK) { message in
            message.family(ifaddrmsg.self) {
                $0.ifa_family = UInt8(prefix.family.addressFamily)
                $0.ifa_prefixlen = UInt8(prefix.length)
                $0.ifa_index = UInt32(index)
            }
            message.put(Int(IFA_LOCAL), prefix.address.bytes)
            message.put(Int(IFA_ADDRESS), prefix.address.bytes)
            if prefix.family == .v6 { message.put(Int(IFA_FLAGS), UInt32(IFA_F_NODAD)) }
        }
    }

    /// The addresses of device `index` (every device's when nil; both families), link-local ones included.
    public func addresses(index: Int32? = nil) throws(SystemCallError) -> [IPPrefix] {
        try request("dump addresses", type: Int(RTM_GETADDR), flags: NLM_F_DUMP) { message in
            message.family(ifaddrmsg.self) { $0.ifa_family = UInt8(AF_UNSPEC) }
        }.compactMap { message in
            message.withContents(ifaddrmsg.self) { header, attributes -> IPPrefix? in
                guard index.map({ header.ifa_index == UInt32($0) }) ?? true,
                      let raw = attributes.bytes(Int(IFA_LOCAL)) ?? attributes.bytes(Int(IFA_ADDRESS)),
                      let address = IPAddress(bytes: raw) else { return nil }
                return IPPrefix(address: address, length: Int(header.ifa_prefixlen))
            }
        }
    }
}
