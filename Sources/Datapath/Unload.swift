// SPDX-License-Identifier: Apache-2.0
import BPFObjects
import BPF
import NodeStore
import CDatapathABI
import NFTables
import Netlink
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

extension Datapath {
    /// What `datapath status` reports.
    public struct Status: Sendable {
        public let build: UInt64
        public let release: Release?
        public let programs: [(name: String, id: UInt32, xlated: Int, jited: Int)]
        public let podAttachments: Int
        /// The cgroups (by id) whose socket hooks swiftpath attached.
        public let socketHookCgroups: [String]
        public let uplinks: [(ifindex: Int32, mode: AttachMode)]
        public let endpointAddresses: (v4: Int, v6: Int)?
        /// What is broken, in words; empty when the datapath is whole.
        public let problems: [String]
    }

    /// The datapath as it stands, checked against `object` (this binary's build): every part that
    /// can be read is reported, every part that cannot is named in `problems`.
    public func status(against object: BPFObject = .datapath) throws(BPFError) -> Status {
        var problems: [String] = []
        let meta = try Self.loadedMeta(storeRoot: storeRoot)
        if meta == nil { problems.append("no build recorded: sp_meta is missing or empty") }
        if let meta, meta.layout_version != UInt32(SP_LAYOUT_VERSION) {
            problems.append("the maps are of layout version \(meta.layout_version), this build's is \(SP_LAYOUT_VERSION)")
        }
        let pinned = Set(folderEntries(folder))
        for name in object.programs where !pinned.contains(name) { problems.append("program \(name) is not pinned") }
        for (name, state) in try BPFObjectLoader.pinnedMaps(of: object.name, bytes: object.bytes, in: folder,
                                                                      resizable: ConnectionTableSize.maps).sorted(by: { $0.key < $1.key }) {
            switch state {
            case .matching: break
            case .missing: problems.append("map \(name) is not pinned")
            case .mismatched: problems.append("map \(name) is of another layout than this build's")
            }
        }
        let undecodable = try store.undecodableRecords()
        if !undecodable.isEmpty { problems.append("\(undecodable.count) endpoint record(s) cannot be read") }
        var programs: [(name: String, id: UInt32, xlated: Int, jited: Int)] = []
        for name in object.programs where pinned.contains(name) {
            let program = try program(name)
            programs.append((name, program.id, program.sizes.xlated, program.sizes.jited))
        }
        return Status(
            build: meta?.object_hash ?? 0,
            release: meta.map { Release(packed: $0.release) },
            programs: programs,
            podAttachments: Self.pinnedLinks(under: layout.path(.podLinks)).count,
            socketHookCgroups: folderEntries(layout.path(.socketHookLinks)),
            uplinks: (try? node.uplinks()) ?? [],
            endpointAddresses: try? pods.endpointCounts(),
            problems: problems)
    }

    /// Removes everything swiftpath attached and pinned on the node: pod and uplink attachments,
    /// programs and maps, and the veths DELs retired (`netlink` is the node's). Pods keep their
    /// veths and addresses; their traffic falls back to the kernel's routing until the datapath is
    /// loaded again. Works on a damaged store too: what cannot be read is removed without being read.
    public func unload(podAttachments: [(hostName: String, hostIndex: Int32, mode: AttachMode)],
                       netlink: NetlinkSocket) throws(DatapathError) {
        try handoff.reapRetiredVeths(netlink)
        try bpf { () throws(BPFError) in
            for pod in podAttachments {
                try pods.detachPod(hostName: pod.hostName, hostIndex: pod.hostIndex, mode: pod.mode)
            }
            // Link pins the records do not know of (a crashed ADD) go too.
            for name in folderEntries(layout.path(.podLinks)) {
                try pods.detachPod(hostName: name, hostIndex: nil, mode: .tcx)
            }
            for uplink in (try? node.uplinks()) ?? [] { try node.detachUplink(ifindex: uplink.ifindex) }
        }
        if node.masqueradeEnabled { try nftables { () throws(NFTablesError) in try NFTables.deleteTable(NodeDatapath.nftTable) } }
        try bpf { () throws(BPFError) in try removePins() }
    }

    /// Unpins every link and the datapath's programs and maps, through folders reached without
    /// following a symlink; what is not a pin stays, in `leftAlone`.
    private func removePins() throws(BPFError) {
        guard let root = try storeFolder(storeRoot) else { return }
        // A retired veth still alive here is in another netns than the node's: its link detaches.
        for group in Self.linkGroups + [.retired, .promotions] {
            for name in folderEntries(layout.path(group)) { try removeLinkFolder("\(layout.path(group))/\(name)") }
            if try root.kind(of: group.rawValue) == .other { pins.leftAlone.append(layout.path(group)) } else { try root.removeFolder(group.rawValue) }
        }
        pins.leftAlone += try root.removePinFolder(String(folder.dropFirst(storeRoot.count + 1)))
    }
}
