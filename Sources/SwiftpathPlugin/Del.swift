import BPFStore
import CNIProtocol
import IPAM

extension Plugin {
    /// DEL: removes the veth, releases the addresses and forgets the endpoint. Whatever is
    /// already gone (netns, link, record, lease) is skipped, so DEL can be repeated.
    func del() throws(CNIError) {
        let store = try openStore()
        let ipam = try addressManager(store: store)
        let host = try hostNetlink()
        let record = try storeCall { () throws(StoreError) in
            try store.record(containerID: attachment.containerID, ifname: attachment.ifname)
        }
        // The veth goes first, so the pod's traffic stops before its map entries go. tcx waits for
        // one RCU grace period either way: in the device's teardown here (tcx_uninstall), and the
        // link, defunct by then, unpins without another.
        try removeVeth(host, record: record, of: attachment)
        try detachFromDatapath(try existingDatapath(store), record: record, hostName: record?.hostName ?? hostInterfaceName)
        try ipam.release(for: attachment, addresses: record?.addresses.map(\.address))
        _ = try storeCall { () throws(StoreError) in
            try store.removeRecord(containerID: attachment.containerID, ifname: attachment.ifname)
        }
        log(record == nil ? "nothing recorded; released what IPAM held" : "removed \(record!.hostName)")
    }

    func storeCall<T>(_ body: () throws(StoreError) -> T) throws(CNIError) -> T {
        do { return try body() } catch { throw CNIError(store: error) }
    }
}
