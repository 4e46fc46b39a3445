// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import Datapath
import IPAM

extension Plugin {
    /// GC: removes every attachment of this network that the runtime no longer lists as valid,
    /// whole (veth, datapath state, addresses, record), including what an ADD killed half-way left;
    /// IPAM releases every address no valid attachment holds; and with no agent there to, the veths
    /// DELs retired are deleted. An ADD still at work (its claim held) is left alone, whatever
    /// network it is for.
    func collectGarbage(_ node: NodeFacts) throws(CNIError) {
        guard let validList = config.validAttachments else {
            throw CNIError(.invalidNetworkConfig, "missing key \"cni.dev/valid-attachments\" in network config",
                           details: "GC needs the list of attachments to keep")
        }
        let valid = Set(validList)
        let (plan, host) = (node.plan, node.host)
        guard let store = try existingStore() else {
            // No store: nothing swiftpath made; a delegated IPAM plugin may still hold leases.
            try addressManager(plan, store: nil)?.collectGarbage(keeping: valid, stale: [])
            return
        }
        let ipam = addressManager(plan, store: store)
        let agentPresent = store.isAgentPresent()
        // Under the lock an ADD either has its pending record and claim already, or has not begun.
        let removed = try store.withLockOrFail { () throws(CNIError) -> [Attachment] in
            let records = try bpfCall { () throws(BPFError) in try store.records() }
            var inFlight: Set<Attachment> = []
            var removed: [Attachment] = []
            for record in records where record.network == config.name && !valid.contains(record.attachment) {
                guard let stale = try settled(record, in: store) else {
                    inFlight.insert(record.attachment)
                    continue
                }
                try tearDown(stale.attachment, record: stale, store: store, host: host, ipam: ipam, retiring: agentPresent)
                removed.append(stale.attachment)
            }
            let kept = try bpfCall { () throws(BPFError) in try store.records() }
            try removeUnrecorded(store, keeping: Set(kept.map(\.hostName)))
            try forgetUnrecordedEndpoints(store)
            try ipam?.collectGarbage(keeping: valid.union(inFlight), stale: removed)
            return removed
        }
        // Without the agent, GC deletes what DELs retired while it ran; outside the store's lock,
        // as the agent does, so that ADDs do not wait behind the deletion's grace periods.
        if !agentPresent, let datapath = Datapath.openExisting(store: store) {
            do throws(DatapathError) { try datapath.handoff.reapRetiredVeths(host) } catch { throw CNIError(datapath: error) }
        }
        log("removed \(removed.count) stale attachment(s): \(removed.map { "\($0.containerID)/\($0.ifname)" })")
    }

    /// The record as GC may remove it, or nil when an ADD is at work on it. A pending record's claim
    /// is held by its ADD, or, when the ADD was killed while its IPAM plugin ran, by that plugin
    /// finishing on its own: GC gives it a moment, then removes what a dead ADD left, and leaves
    /// alone an ADD that is still running or has just completed.
    private func settled(_ record: EndpointRecord, in store: EndpointStore) throws(CNIError) -> EndpointRecord? {
        guard record.state == .pending, try bpfCall({ () throws(BPFError) in try store.isClaimed(record.hostName) }) else {
            return record
        }
        return try bpfCall { () throws(BPFError) -> EndpointRecord? in
            guard try store.awaitClaim(record.hostName, seconds: 2),
                  let now = try store.record(containerID: record.containerID, ifname: record.ifname), now.state == .pending else { return nil }
            return now
        }
    }

    /// Pod links, host ports and claims that no record names and no live run holds: left by an ADD
    /// killed between taking its claim and writing its record, or by an older swiftpath.
    private func removeUnrecorded(_ store: EndpointStore, keeping recorded: Set<String>) throws(CNIError) {
        let datapath = Datapath.openExisting(store: store)
        let hostPortOwners = try bpfCall { () throws(BPFError) in Set(try store.recordedHostPorts().values) }
        let names = Set(store.claimedNames() + (datapath?.pods.attachedPodNames() ?? []) + hostPortOwners).subtracting(recorded)
        for name in names.sorted() {
            guard try !bpfCall({ () throws(BPFError) in try store.isClaimed(name) }) else { continue }
            try bpfCall { () throws(BPFError) in
                try datapath?.pods.detachPod(hostName: name, hostIndex: nil, mode: .tcx)
                try store.dropClaim(name)
            }
            if hostPortOwners.contains(name) { _ = try releaseHostPorts(of: name, store: store, datapath: datapath) }
        }
        if let datapath { logLeftAlone(datapath) }
    }
}

extension Plugin {
    /// Endpoint map entries that no record of any network accounts for: nobody else removes them.
    private func forgetUnrecordedEndpoints(_ store: EndpointStore) throws(CNIError) {
        guard let datapath = Datapath.openExisting(store: store) else { return }
        let forgotten = try bpfCall { () throws(BPFError) -> Int in
            do throws(BPFError) {
                return try datapath.pods.forgetUnrecordedEndpoints { () throws(BPFError) in try store.records() }
            } catch where error.isRepairable {
                return 0   // a map missing or of another layout: 'datapath load' refills it from the records
            }
        }
        if forgotten > 0 { log("forgot \(forgotten) endpoint map entries no record accounts for") }
    }
}

extension EndpointRecord {
    var attachment: Attachment { Attachment(containerID: containerID, ifname: ifname) }
}
