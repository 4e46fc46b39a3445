// SPDX-License-Identifier: Apache-2.0
import CLibMNL
import SystemCallSupport
#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSocket {
    /// The local ports TCP sockets listen on in the socket's network namespace, IPv4 and IPv6
    /// (a sock_diag socket). Asking for the LISTEN state alone has the kernel walk its listening
    /// hash only, where reading /proc/net/tcp walks every bucket of the established hash too: a
    /// millisecond and more a read on a machine with much memory.
    public func listeningTCPPorts(ownedBy uid: UInt32? = nil) throws(SystemCallError) -> Set<UInt16> {
        var ports: Set<UInt16> = []
        for family in [AF_INET, AF_INET6] {
            let sockets = try request("dump listening TCP sockets", type: Int(SOCK_DIAG_BY_FAMILY), flags: NLM_F_DUMP) { message in
                message.family(inet_diag_req_v2.self) {
                    $0.sdiag_family = UInt8(family)
                    $0.sdiag_protocol = UInt8(IPPROTO_TCP)
                    $0.idiag_states = 1 << UInt32(TCP_LISTEN)
                }
            }
            for socket in sockets {
                let (port, owner) = socket.withContents(inet_diag_msg.self) { header, _ in (UInt16(bigEndian: header.id.idiag_sport), header.idiag_uid) }
                if uid == nil || uid == owner { ports.insert(port) }
            }
        }
        return ports
    }
}
