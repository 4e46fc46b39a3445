// SPDX-License-Identifier: Apache-2.0

/// Where everything of a store lives under its root in bpffs: the one place its folder and pin
/// names are written, for the plugin, the agent and the CLI alike. (The Python helpers' copy,
/// Tests/Fixtures/swiftpath_abi.py, is held to the paths this makes by CrossLanguageABITests.)
public struct StoreLayout: Sendable, Equatable {
    /// The node's store unless told otherwise.
    public static let defaultRoot = "/sys/fs/bpf/swiftpath"

    /// The folders under the root, by what they hold.
    public enum Folder: String, CaseIterable, Sendable {
        /// The datapath's maps and programs (Datapath).
        case datapath
        /// One pin per attachment an ADD, DEL or GC is working on.
        case claims
        /// The node agent's presence lock.
        case agent
        /// Link pins, one subfolder per pod's host end, uplink or cgroup.
        case podLinks = "endpoints", uplinkLinks = "uplinks", socketHookLinks = "socketlb"
        /// Links of veths DEL retired for the agent to delete, and pods ADD asks the agent to move to tcx.
        case retired, promotions
    }

    /// The store's own records, pinned at the root, by what they hold.
    public enum Record: String, CaseIterable, Sendable {
        case endpoints = "endpoints_v1", leases = "ip_leases_v1", leaseCursors = "ip_cursors_v1", services = "services_v1"
        case hostPorts = "host_ports_v1", hostPortBackends = "host_port_backends_v1"
    }

    public let root: String

    public init(root: String) { self.root = root }

    public func path(_ folder: Folder) -> String { root + "/" + folder.rawValue }
    public func path(_ record: Record) -> String { root + "/" + record.rawValue }
}
