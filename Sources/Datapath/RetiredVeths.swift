// SPDX-License-Identifier: Apache-2.0
import BPF
import Netlink
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// What marks a retired veth on the node: its device group and its names (see `AgentHandoff`).
public enum RetiredVeths {
    /// The device group of retired veths ("SPRT"), which nothing else on a node is expected to use.
    public static let deviceGroup: UInt32 = 0x5350_5254

    /// The name both ends of a retired veth take, in the node's netns and in the pod's: unique
    /// for as long as the host end lives, since its index is.
    public static func name(hostIndex: Int32) -> String { "spr\(hostIndex)" }
}

extension AgentHandoff {
    /// The store's folder of retired veths, one subfolder per retired veth, named for it. A
    /// subfolder tells the reaper there is something to delete, and holds the veth's link.
    var retiredFolder: String { layout.path(.retired) }

    /// Records a veth just retired under `retired/<retired name>`, moving its pod link there.
    /// Where the link cannot be moved, it is unpinned, detaching it now.
    public func markRetired(hostName: String, retiredName: String) throws(BPFError) {
        try makeFolder(retiredFolder)
        let marker = "\(retiredFolder)/\(retiredName)"
        if pods.hasPodLink(hostName), rename(pods.linkFolder(hostName), marker) != 0 {
            try removeLinkFolder(pods.linkFolder(hostName))
        }
        try makeFolder(marker)
    }

    /// Deletes the retired veths of `netlink`'s netns in one request, then unpins the links of
    /// those that are gone (with the pod's netns, or just now). Without `everything`, it asks
    /// the kernel only when a DEL marked a veth retired since the last time: a DEL killed between
    /// retiring its veth and marking it leaves one that only a pass with `everything` finds.
    /// Returns how many marked veths it took.
    @discardableResult
    public func reapRetiredVeths(_ netlink: NetlinkSocket, everything: Bool = true) throws(DatapathError) -> Int {
        // Marks made after the listing belong to veths retired after it: the deletion may miss them,
        // so they stay for the next time.
        let marked = folderEntries(retiredFolder)
        guard everything || !marked.isEmpty else { return 0 }
        do { try netlink.deleteGroup(RetiredVeths.deviceGroup) } catch { throw .netlink(error) }
        return try bpf { () throws(BPFError) -> Int in
            guard let retired = try storeFolder(retiredFolder) else { return 0 }
            var reaped = 0
            for name in marked {
                let folder: PinFolder
                do throws(BPFError) {
                    guard let opened = try retired.subfolder(name) else { continue }
                    folder = opened
                } catch where error.kind == .untrusted {
                    pins.leftAlone.append(error.description)
                    continue
                }
                for pin in try folder.entries() where try folder.kind(of: pin) == .pin {
                    guard let link = try BPFLink.pinned(at: "\(folder.path)/\(pin)"), link.info.ifindex == 0 else { continue }
                    try BPFLink.unpin(pin, in: folder)
                }
                if try retired.removeFolder(name) { reaped += 1 }
            }
            return reaped
        }
    }
}
