import BPFStore
import CNIProtocol
import IPAM

extension Plugin {
    /// GC: removes every attachment of this network that the runtime no longer lists as valid:
    /// its veth and its record; then IPAM releases every address no valid attachment holds.
    func collectGarbage() throws(CNIError) {
        guard let validList = config.validAttachments else {
            throw CNIError(.invalidNetworkConfig, "missing key \"cni.dev/valid-attachments\" in network config",
                           details: "GC needs the list of attachments to keep")
        }
        let valid = Set(validList)
        let store = try openStore()
        let ipam = try addressManager(store: store)
        let host = try hostNetlink()
        let datapath = try existingDatapath(store)
        let removed = try store.withLockOrFail { () throws(CNIError) -> [Attachment] in
            let stale = try storeCall { () throws(StoreError) in try store.records() }
                .filter { $0.network == config.name && !valid.contains($0.attachment) }
            for record in stale {
                try removeVeth(host, record: record, of: record.attachment)
                try detachFromDatapath(datapath, record: record, hostName: record.hostName)
                _ = try storeCall { () throws(StoreError) in
                    try store.removeRecord(containerID: record.containerID, ifname: record.ifname)
                }
            }
            // Attachments whose record never got written (an ADD killed half-way) go too.
            let recorded = Set(try storeCall { () throws(StoreError) in try store.records() }.map(\.hostName))
            if let datapath {
                try datapathCall { () throws(StoreError) in
                    for name in datapath.attachedPodNames() where !recorded.contains(name) {
                        try datapath.detachPod(hostName: name, hostIndex: nil, mode: .tcx)
                    }
                }
            }
            return stale.map(\.attachment)
        }
        try ipam.collectGarbage(keeping: valid, stale: removed)
        log("removed \(removed.count) stale attachment(s): \(removed.map { "\($0.containerID)/\($0.ifname)" })")
    }
}

extension EndpointRecord {
    var attachment: Attachment { Attachment(containerID: containerID, ifname: ifname) }
}

extension EndpointStore {
    func withLockOrFail<T>(_ body: () throws(CNIError) -> T) throws(CNIError) -> T {
        let outcome: Result<T, CNIError>
        do { outcome = try withLock(body) } catch { throw CNIError(store: error) }
        return try outcome.get()
    }
}
