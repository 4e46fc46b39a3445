// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import CDatapathABI
import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// How a program is attached to a device.
public enum AttachMode: UInt8, Sendable, CustomStringConvertible {
    /// A bpf_link on tcx (Linux 6.6+), pinned in the store: owned, multi-program, updatable in place.
    case tcx = 1
    /// clsact + cls_bpf in direct-action mode, where tcx is missing.
    case tc = 2

    public var description: String { self == .tcx ? "tcx" : "tc" }
}

/// What the node's config asks for: tcx with a fallback to tc, or one of them only.
public enum AttachPolicy: String, Sendable {
    case auto, tcx, tc
}

public struct ProgramAttachment: Sendable, Equatable {
    public let mode: AttachMode
    /// The bpf_link id (tcx) or the program id (tc).
    public let id: UInt32
}

extension Datapath {
    /// Attaches the pod program at the tcx ingress of the pod's host end (what the pod sends),
    /// pinning the link under the endpoint's folder.
    public func attachPod(hostName: String, hostIndex: Int32, policy: AttachPolicy) throws(BPFError) -> ProgramAttachment {
        try attach(podEgress, named: DatapathPrograms.podEgress, ifindex: hostIndex, folder: endpointFolder(hostName), policy: policy)
    }

    /// Removes the pod's attachment: its pinned link (tcx), or its filter (tc, when the device is
    /// still there), and a request to promote it.
    public func detachPod(hostName: String, hostIndex: Int32?, mode: AttachMode) throws(BPFError) {
        withdrawPromotion(hostName: hostName)
        if mode == .tc, let hostIndex { tcFilter(hostIndex).detach() }
        try removeLinkFolder(endpointFolder(hostName))
    }

    /// The host ends that have a pinned pod link in the store.
    public func attachedPodNames() -> [String] { folderEntries(layout.path(.podLinks)) }

    /// Whether the host end `hostName` has a pinned pod link (one lookup, however many pods).
    public func hasPodLink(_ hostName: String) -> Bool { access(endpointFolder(hostName), F_OK) == 0 }

    func endpointFolder(_ hostName: String) -> String { "\(layout.path(.podLinks))/\(hostName)" }
    func uplinkFolder(_ ifindex: Int32) -> String { "\(layout.path(.uplinkLinks))/if\(ifindex)" }

    /// The pod's attachment as the kernel has it now, or nil when it is gone.
    public func podAttachment(hostName: String, hostIndex: Int32, mode: AttachMode) throws(BPFError) -> ProgramAttachment? {
        switch mode {
        case .tcx:
            guard let link = try BPFLink.pinned(at: endpointFolder(hostName) + "/" + DatapathPrograms.podEgress),
                  link.info.ifindex == UInt32(hostIndex) else { return nil }
            return ProgramAttachment(mode: .tcx, id: link.info.id)
        case .tc:
            return tcFilter(hostIndex).programID().map { ProgramAttachment(mode: .tc, id: $0) }
        }
    }

    /// Makes sure every device in `uplinks` runs the uplink program at ingress (cheap when it
    /// does: one pin open per device). A link whose device went away is replaced.
    @discardableResult
    public func ensureUplinks(_ uplinks: [(name: String, index: Int32)], policy: AttachPolicy) throws(BPFError) -> [ProgramAttachment] {
        var attachments: [ProgramAttachment] = []
        for uplink in uplinks {
            let folder = uplinkFolder(uplink.index)
            let pin = folder + "/" + DatapathPrograms.uplinkIngress
            if let link = try BPFLink.pinned(at: pin) {
                if link.info.ifindex == UInt32(uplink.index) {
                    attachments.append(ProgramAttachment(mode: .tcx, id: link.info.id))
                    continue
                }
                if let pins = try storeFolder(folder) { try BPFLink.unpin(DatapathPrograms.uplinkIngress, in: pins) }   // defunct: its device is gone
            } else if try uplinksMap.lookup(UInt32(bitPattern: uplink.index), as: UInt32.self) == UInt32(AttachMode.tc.rawValue),
                      let id = tcFilter(uplink.index).programID(), id == (try uplinkIngress.id) {
                attachments.append(ProgramAttachment(mode: .tc, id: id))
                continue
            }
            let attachment = try attach(uplinkIngress, named: DatapathPrograms.uplinkIngress, ifindex: uplink.index, folder: folder,
                                        policy: policy)
            try uplinksMap.upsert(UInt32(bitPattern: uplink.index), UInt32(attachment.mode.rawValue))
            attachments.append(attachment)
        }
        return attachments
    }

    /// The devices whose uplink link the store at `storeRoot` pins (one folder read: the store
    /// itself is not opened).
    public static func attachedUplinks(storeRoot: String) -> Set<Int32> {
        Set(folderEntries(StoreLayout(root: storeRoot).path(.uplinkLinks)).compactMap { $0.hasPrefix("if") ? Int32($0.dropFirst(2)) : nil })
    }

    /// The uplinks swiftpath attached to, with their mode.
    public func uplinks() throws(BPFError) -> [(ifindex: Int32, mode: AttachMode)] {
        var result: [(ifindex: Int32, mode: AttachMode)] = []
        for index in try uplinksMap.keys(as: UInt32.self) {
            if let raw = try uplinksMap.lookup(index, as: UInt32.self), let mode = AttachMode(rawValue: UInt8(truncatingIfNeeded: raw)) {
                result.append((Int32(bitPattern: index), mode))
            }
        }
        return result
    }

    /// Detaches the uplink program from `ifindex`.
    public func detachUplink(ifindex: Int32) throws(BPFError) {
        if let mode = try uplinksMap.lookup(UInt32(bitPattern: ifindex), as: UInt32.self), mode == UInt32(AttachMode.tc.rawValue) {
            tcFilter(ifindex).detach()
        }
        try removeLinkFolder(uplinkFolder(ifindex))
        try uplinksMap.delete(UInt32(bitPattern: ifindex))
    }

    /// Attaches `program` at the tcx ingress of `ifindex`, its link pinned as `folder/<name>`: a
    /// link pin carries its program's name, which is how an upgrade finds the program to swap in.
    private func attach(_ program: BPFProgram, named name: String, ifindex: Int32, folder: String,
                        policy: AttachPolicy) throws(BPFError) -> ProgramAttachment {
        if policy != .tc {
            do {
                let link = try BPFLink.attachTCX(program, ifindex: ifindex, direction: .ingress)
                try pin(link, named: name, in: folder)
                return ProgramAttachment(mode: .tcx, id: link.info.id)
            } catch where policy == .auto && (error.errno == .invalidArgument || error.errno == .notSupported) {
                // A kernel before 6.6 does not know the tcx attach types: fall back to tc below.
            }
        }
        try tcFilter(ifindex).attach(program)
        return ProgramAttachment(mode: .tc, id: program.id)
    }

    /// Pins `link` as `folder/<name>`, making the folder (and its group's) where missing.
    func pin(_ link: BPFLink, named name: String, in folder: String) throws(BPFError) {
        try Self.makeFolder(String(folder[..<folder.lastIndex(of: "/")!]))
        try Self.makeFolder(folder)
        try link.pin(at: folder + "/" + name)
    }

    /// Unpins every link in `folder` (which detaches them) and removes the folder. What is not a
    /// pin, or a folder reached through a symlink, stays where it is and goes into `leftAlone`.
    func removeLinkFolder(_ folder: String) throws(BPFError) {
        let slash = folder.lastIndex(of: "/")!
        do {
            guard let parent = try storeFolder(String(folder[..<slash])) else { return }
            leftAlone += try parent.removePinFolder(String(folder[folder.index(after: slash)...]))
        } catch where error.kind == .untrusted {
            leftAlone.append(error.description)
        }
    }

    /// The folder `path` of the store, reached from the store's root one folder at a time without
    /// following a symlink; nil when it is missing.
    func storeFolder(_ path: String) throws(BPFError) -> PinFolder? {
        precondition(path == storeRoot || path.hasPrefix(storeRoot + "/"), "\(path) is not in the store \(storeRoot)")
        return try PinFolder.open(storeRoot, String(path.dropFirst(storeRoot.count)))
    }

    /// The name of the device `index` names in this thread's netns, or nil.
    static func deviceName(_ index: Int32) -> String? {
        var name = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
        guard if_indextoname(UInt32(index), &name) != nil else { return nil }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// swiftpath's own cls_bpf filter on `ifindex` (tc mode).
    func tcFilter(_ ifindex: Int32) -> TCFilter {
        TCFilter(ifindex: ifindex, handle: UInt32(SP_TC_HANDLE), priority: UInt32(SP_TC_PRIORITY))
    }
}
