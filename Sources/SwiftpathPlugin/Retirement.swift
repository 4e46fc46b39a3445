// SPDX-License-Identifier: Apache-2.0
import BPF
import CNIProtocol
import Datapath
import Netlink
import Netns

extension Plugin {
    /// Retires the pod's veth instead of deleting it, for the node agent to delete (see
    /// `RetiredVeths`): both ends down and renamed, the pod's end only where it is still ours
    /// (the peer of our host end, in the pod's netns), then marked for the reaper, its link's pin
    /// moved aside. Where the kernel refuses a step, the veth is deleted as it would be without
    /// the agent. Repeated on a veth retired already (by a DEL killed before it marked it), it
    /// only marks it.
    func retireVeth(_ hostEnd: Link, hostName: String, podNetns: String, host: NetlinkSocket, datapath: Datapath) throws(CNIError) {
        let retiredName = RetiredVeths.name(hostIndex: hostEnd.index)
        do throws(CNIError) {
            do { try host.setDown(index: hostEnd.index, group: RetiredVeths.deviceGroup) } catch { throw CNIError(netlink: error) }
            try retirePodEnd(of: hostEnd, in: podNetns, as: retiredName)
            do { try host.rename(index: hostEnd.index, to: retiredName) } catch { throw CNIError(netlink: error) }
        } catch {
            log("retiring \(hostEnd.name) failed, deleting it: \(error.description)")
            do { try host.deleteLink(index: hostEnd.index) } catch { throw CNIError(netlink: error) }
            return
        }
        try bpfCall { () throws(BPFError) in try datapath.handoff.markRetired(hostName: hostName, retiredName: retiredName) }
    }

    /// The pod's end of the veth, down and renamed, so that the pod's interface name is free at once.
    private func retirePodEnd(of hostEnd: Link, in netns: String, as retiredName: String) throws(CNIError) {
        guard !netns.isEmpty, let namespace = try? NetworkNamespace.open(netns) else { return }
        let pod = try netlink(in: namespace)
        do {
            guard let end = try pod.link(named: attachment.ifname), end.kind == "veth", end.peerIndex == hostEnd.index else { return }
            try pod.setDown(index: end.index, group: RetiredVeths.deviceGroup)
            try pod.rename(index: end.index, to: retiredName)
        } catch {
            throw CNIError(netlink: error)
        }
    }
}
