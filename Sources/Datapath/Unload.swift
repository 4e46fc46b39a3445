import BPFStore
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Datapath {
    /// What `datapath status` reports.
    public struct Status: Sendable {
        public let build: UInt64
        public let programs: [(name: String, id: UInt32, xlated: Int, jited: Int)]
        public let podAttachments: Int
        /// The cgroups (by id) whose socket hooks swiftpath attached.
        public let socketHookCgroups: [String]
        public let uplinks: [(ifindex: Int32, mode: AttachMode)]
        public let endpointAddresses: (v4: Int, v6: Int)
    }

    public func status() throws(StoreError) -> Status {
        let build = try Self.loadedBuild(storeRoot: storeRoot) ?? 0
        return Status(
            build: build,
            programs: [(Self.programNames.pod, podEgress.id, podEgress.sizes.xlated, podEgress.sizes.jited),
                       (Self.programNames.uplink, uplinkIngress.id, uplinkIngress.sizes.xlated, uplinkIngress.sizes.jited)],
            podAttachments: Self.pinnedLinks(under: storeRoot + "/endpoints").count,
            socketHookCgroups: Self.subfolders(of: storeRoot + "/socketlb"),
            uplinks: try uplinks(),
            endpointAddresses: try endpointCounts())
    }

    /// Removes everything swiftpath attached and pinned on the node: pod and uplink attachments,
    /// programs and maps. Pods keep their veths and addresses; their traffic falls back to the
    /// kernel's routing until the datapath is loaded again.
    public func unload(podAttachments: [(hostName: String, hostIndex: Int32, mode: AttachMode)]) throws(StoreError) {
        for pod in podAttachments {
            try detachPod(hostName: pod.hostName, hostIndex: pod.hostIndex, mode: pod.mode)
        }
        // Link pins the records do not know of (a crashed ADD) go too.
        for name in Self.subfolders(of: storeRoot + "/endpoints") {
            try detachPod(hostName: name, hostIndex: nil, mode: .tcx)
        }
        for uplink in try uplinks() { try detachUplink(ifindex: uplink.ifindex) }
        if masqueradeEnabled { try NFTables.deleteTable(Self.nftTable) }
        for group in Self.linkGroups {
            for name in Self.subfolders(of: "\(storeRoot)/\(group)") { try removeLinkFolder("\(storeRoot)/\(group)/\(name)") }
            rmdir("\(storeRoot)/\(group)")
        }
        for name in Self.subfolders(of: folder) {
            guard unlink("\(folder)/\(name)") == 0 || Errno.current == .noSuchFileOrDirectory else {
                throw StoreError("unpin \(folder)/\(name)", .current)
            }
        }
        guard rmdir(folder) == 0 || Errno.current == .noSuchFileOrDirectory else {
            throw StoreError("remove \(folder)", .current)
        }
    }
}
