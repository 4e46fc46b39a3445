// SPDX-License-Identifier: Apache-2.0
import BPF
import NFTables
import SystemCallSupport

/// A failure of node-wide datapath work, by the part of the node that failed: the BPF maps,
/// programs and links, the nftables masquerade table, the cgroup the socket hooks go on, or the
/// devices (netlink).
public enum DatapathError: Error, CustomStringConvertible, Sendable {
    case bpf(BPFError)
    case masquerade(NFTablesError)
    case cgroup(SystemCallError)
    case netlink(SystemCallError)

    public var description: String {
        switch self {
        case .bpf(let error): error.description
        case .masquerade(let error): error.description
        case .cgroup(let error): error.description
        case .netlink(let error): error.description
        }
    }
}

/// Runs BPF work inside a function that throws DatapathError.
func bpf<T>(_ body: () throws(BPFError) -> T) throws(DatapathError) -> T {
    do { return try body() } catch { throw .bpf(error) }
}
