// SPDX-License-Identifier: Apache-2.0
import BPF
import Netlink
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A DEL that finds the node agent present does not delete its veth, which would hold it for the
/// kernel's grace periods: it retires the veth. Both ends go down at once (the kernel drops their
/// routes and neighbour entries), into a device group of their own, renamed so that the next ADD
/// of the same attachment finds its names free. Most retired veths then go with the pod's netns
/// (the kernel deletes a veth when it destroys the netns of either end, off anyone's critical
/// path); the agent deletes the rest as one group, behind one set of grace periods however many
/// there are.
///
/// The tcx link of a retired veth stays pinned, under `retired/<retired name>`, for as long as
/// its device lives: a link released from a live device detaches with a grace period of its own.
/// Once the device is gone the link is defunct and unpinning it costs nothing.
public enum RetiredVeths {
    /// The device group of retired veths ("SPRT"), which nothing else on a node is expected to use.
    public static let deviceGroup: UInt32 = 0x5350_5254

    /// The name both ends of a retired veth take, in the node's netns and in the pod's: unique
    /// for as long as the host end lives, since its index is.
    public static func name(hostIndex: Int32) -> String { "spr\(hostIndex)" }
}

extension Datapath {
    /// The store's folder of retired veths' links, one subfolder per retired veth.
    static let retiredLinkGroup = "retired"

    var retiredFolder: String { "\(storeRoot)/\(Self.retiredLinkGroup)" }

    /// Moves the pod link of `hostName` under `retired/`, named for the retired veth. Where that
    /// cannot be done, the link is unpinned, detaching it now.
    public func retirePodLink(hostName: String, retiredName: String) throws(BPFError) {
        guard hasPodLink(hostName) else { return }
        try Self.makeFolder(retiredFolder)
        if rename(endpointFolder(hostName), "\(retiredFolder)/\(retiredName)") != 0 {
            try removeLinkFolder(endpointFolder(hostName))
        }
    }

    /// Deletes the retired veths of `netlink`'s netns in one request, then unpins the links of
    /// every retired veth that is gone (with the pod's netns, or just now). A veth retired while
    /// this runs keeps its link until the next time. Returns how many links were released.
    @discardableResult
    public func reapRetiredVeths(_ netlink: NetlinkSocket) throws(DatapathError) -> Int {
        do { try netlink.deleteGroup(RetiredVeths.deviceGroup) } catch { throw .netlink(error) }
        return try bpf { () throws(BPFError) -> Int in
            var released = 0
            for name in folderEntries(retiredFolder) {
                let folder = "\(retiredFolder)/\(name)"
                for pin in folderEntries(folder) {
                    guard let link = try BPFLink.pinned(at: "\(folder)/\(pin)"), link.info.ifindex == 0 else { continue }
                    try BPFLink.unpin("\(folder)/\(pin)")
                    released += 1
                }
                rmdir(folder)
            }
            return released
        }
    }
}
