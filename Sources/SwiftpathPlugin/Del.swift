// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import IPAM

extension Plugin {
    /// DEL: removes the veth (or retires it, for the agent to delete), its datapath state, the
    /// addresses and the record. Whatever is already gone (netns, link, record, lease) is skipped,
    /// so DEL can be repeated; a config that ADD would refuse still cleans up, since the runtime
    /// has no other way to tear the pod down.
    func del() throws(CNIError) {
        let store = try existingStore()
        let record = try store.flatMap { store throws(CNIError) in
            try bpfCall { () throws(BPFError) in try store.record(containerID: attachment.containerID, ifname: attachment.ifname) }
        }
        let ipam: (any AddressManager)?
        var problems = settingsProblems
        do { ipam = addressManager(try ipamPlan(), store: store) } catch {
            problems.append(error)
            ipam = nil
        }
        // DEL holds the attachment's claim while it works, so that the agent does not promote the
        // pod meanwhile. An ADD killed while its IPAM plugin ran leaves that plugin running,
        // holding the claim: its lease must land before this DEL releases it.
        let hostName = Self.hostInterfaceName(containerID: attachment.containerID, ifname: attachment.ifname)
        let claim = try store.flatMap { store throws(CNIError) in
            try bpfCall { () throws(BPFError) in try store.awaitAndClaim(hostName) }
        }
        if store != nil, claim == nil { log("the claim on \(hostName) is still held after 10 s; cleaning up regardless") }
        // With the agent running, the veth is retired for it to delete: DEL skips the grace periods.
        let retiring = store?.isAgentPresent() ?? false
        let found = try tearDown(attachment, record: record, store: store, host: hostNetlink(), ipam: ipam, retiring: retiring)
        withExtendedLifetime(claim) {}
        if !found, let problem = problems.first { throw problem }
        log(found ? "\(retiring ? "retired" : "removed") \(hostName)" : "nothing recorded or wired; released what IPAM held")
    }
}
