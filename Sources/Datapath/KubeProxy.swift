// SPDX-License-Identifier: Apache-2.0
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
    public static func evidence() -> [String] {
        var found: [String] = []
        if isListening(onTCPPort: healthPort) { found.append("a listener on kube-proxy's health port \(healthPort)") }
        return found + NFTables.kubeProxyTraces()
    }

    /// Whether a TCP socket listens on `port` in this thread's netns (/proc/thread-self/net/tcp and
    /// tcp6: "sl local_address rem_address st ...", the port in hex, state 0A for LISTEN).
    static func isListening(onTCPPort port: UInt16) -> Bool {
        for table in ["tcp", "tcp6"] {
            guard let file = fopen("/proc/thread-self/net/\(table)", "r") else { continue }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 512)
            while fgets(&line, Int32(line.count), file) != nil {
                let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
                guard fields.count > 3, fields[3] == "0A", let colon = fields[1].lastIndex(of: ":"),
                      UInt16(fields[1][fields[1].index(after: colon)...], radix: 16) == port else { continue }
                return true
            }
        }
        return false
    }
}
