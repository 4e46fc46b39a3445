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

/// The pods' side of the datapath: each pod's program attachment on its host end (its link pinned
/// under `endpoints/<host device>`) and its entries in the endpoint maps.
public struct PodAttachments: DatapathPart {
    let pins: DatapathPins

    var podEgress: BPFProgram { get throws(BPFError) { try program(DatapathPrograms.podEgress) } }
    var endpoints4: BPFMap { get throws(BPFError) { try map(Layouts.endpoints4) } }
    var endpoints6: BPFMap { get throws(BPFError) { try map(Layouts.endpoints6) } }
    var podDevices: BPFMap { get throws(BPFError) { try map(Layouts.podDevices) } }

    /// Attaches the pod program at the tcx ingress of the pod's host end (what the pod sends),
    /// pinning the link under the endpoint's folder.
    public func attachPod(hostName: String, hostIndex: Int32, policy: AttachPolicy) throws(BPFError) -> ProgramAttachment {
        try attach(podEgress, named: DatapathPrograms.podEgress, ifindex: hostIndex, folder: linkFolder(hostName), policy: policy)
    }

    /// Removes the pod's attachment: its pinned link (tcx), or its filter (tc, when the device is
    /// still there), and a request to promote it.
    public func detachPod(hostName: String, hostIndex: Int32?, mode: AttachMode) throws(BPFError) {
        AgentHandoff(pins: pins).withdrawPromotion(hostName: hostName)
        if mode == .tc, let hostIndex { tcFilter(hostIndex).detach() }
        try removeLinkFolder(linkFolder(hostName))
    }

    /// The host ends that have a pinned pod link in the store.
    public func attachedPodNames() -> [String] { folderEntries(layout.path(.podLinks)) }

    /// Whether the host end `hostName` has a pinned pod link (one lookup, however many pods).
    public func hasPodLink(_ hostName: String) -> Bool { access(linkFolder(hostName), F_OK) == 0 }

    func linkFolder(_ hostName: String) -> String { "\(layout.path(.podLinks))/\(hostName)" }

    /// The pod's attachment as the kernel has it now, or nil when it is gone.
    public func podAttachment(hostName: String, hostIndex: Int32, mode: AttachMode) throws(BPFError) -> ProgramAttachment? {
        switch mode {
        case .tcx:
            guard let link = try BPFLink.pinned(at: linkFolder(hostName) + "/" + DatapathPrograms.podEgress),
                  link.info.ifindex == UInt32(hostIndex) else { return nil }
            return ProgramAttachment(mode: .tcx, id: link.info.id)
        case .tc:
            return tcFilter(hostIndex).programID().map { ProgramAttachment(mode: .tc, id: $0) }
        }
    }
}

extension DatapathPart {
    /// Attaches `program` at the tcx ingress of `ifindex`, its link pinned as `folder/<name>`: a
    /// link pin carries its program's name, which is how an upgrade finds the program to swap in.
    func attach(_ program: BPFProgram, named name: String, ifindex: Int32, folder: String,
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
}
