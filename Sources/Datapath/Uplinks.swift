// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import CDatapathABI
import SystemCallSupport

/// What the datapath holds for the node as a whole: the uplink program on the node's uplinks, the
/// cluster's and this node's address sets, masquerading, and the socket load balancer's cgroup hooks.
public struct NodeDatapath: DatapathPart {
    let pins: DatapathPins

    var uplinkIngress: BPFProgram { get throws(BPFError) { try program(DatapathPrograms.uplinkIngress) } }
    var uplinksMap: BPFMap { get throws(BPFError) { try map(Layouts.uplinks) } }
    var nodeConfig: BPFMap { get throws(BPFError) { try map(Layouts.node) } }
    var cluster4: BPFMap { get throws(BPFError) { try map(Layouts.cluster4) } }
    var cluster6: BPFMap { get throws(BPFError) { try map(Layouts.cluster6) } }
    var nodes4: BPFMap { get throws(BPFError) { try map(Layouts.nodes4) } }
    var nodes6: BPFMap { get throws(BPFError) { try map(Layouts.nodes6) } }
    var local4: BPFMap { get throws(BPFError) { try map(Layouts.local4) } }
    var local6: BPFMap { get throws(BPFError) { try map(Layouts.local6) } }

    func uplinkFolder(_ ifindex: Int32) -> String { "\(layout.path(.uplinkLinks))/if\(ifindex)" }

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
                if let links = try storeFolder(folder) { try BPFLink.unpin(DatapathPrograms.uplinkIngress, in: links) }   // defunct: its device is gone
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
}
