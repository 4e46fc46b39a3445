// SPDX-License-Identifier: Apache-2.0
import Netlink
import NFTables
#if canImport(Glibc)
import Glibc
#endif

/// kube-proxy on the node. swiftpath's host routing hands pod traffic past netfilter, so a pod's
/// packet to a ClusterIP would never meet kube-proxy's DNAT, and a reply that did would come back
/// through the fast path and miss the reverse translation: the two cannot share a node. The socket
/// load balancer is the node's service proxy instead.
public enum KubeProxy {
    /// kube-proxy's health port (`--healthz-bind-address`, 0.0.0.0:10256 unless changed), served
    /// in every proxy mode.
    public static let healthPort: UInt16 = 10256

    /// What shows kube-proxy at work in the caller's network namespace; empty when nothing does.
    public static func evidence() -> [String] { listener() + rules() }

    /// Its health port's listener: one sock_diag dump, cheap enough to look at on every change.
    /// Only root's: kube-proxy runs as root, and any local user may bind a port above 1024, which
    /// must not keep the node from becoming Ready.
    public static func listener() -> [String] {
        isListening(onTCPPort: healthPort, ownedBy: 0) ? ["a listener of root's on kube-proxy's health port \(healthPort)"] : []
    }

    /// Its netfilter rules: listing them runs the nft tool (milliseconds).
    public static func rules() -> [String] { NFTables.kubeProxyTraces() }

    /// Whether a TCP socket listens on `port` in this thread's netns: asked of sock_diag, or read
    /// from /proc on a kernel built without it.
    static func isListening(onTCPPort port: UInt16, ownedBy uid: UInt32) -> Bool {
        if let ports = try? NetlinkSocket(.socketDiagnostics).listeningTCPPorts(ownedBy: uid) { return ports.contains(port) }
        return isListedInProc(onTCPPort: port, ownedBy: uid)
    }

    /// /proc/thread-self/net/tcp and tcp6: "sl local_address rem_address st tx:rx tr:tm retrnsmt uid ...",
    /// the port in hex, state 0A for LISTEN.
    private static func isListedInProc(onTCPPort port: UInt16, ownedBy uid: UInt32) -> Bool {
        for table in ["tcp", "tcp6"] {
            guard let file = fopen("/proc/thread-self/net/\(table)", "r") else { continue }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 512)
            while fgets(&line, Int32(line.count), file) != nil {
                let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
                guard fields.count > 7, fields[3] == "0A", UInt32(fields[7]) == uid, let colon = fields[1].lastIndex(of: ":"),
                      UInt16(fields[1][fields[1].index(after: colon)...], radix: 16) == port else { continue }
                return true
            }
        }
        return false
    }
}
