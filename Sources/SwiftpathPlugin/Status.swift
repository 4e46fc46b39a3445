import BPFStore
import CNIProtocol
import IPAM

extension Plugin {
    /// STATUS: ready when the store opens and IPAM can hand out addresses; code 50 otherwise.
    func status() throws(CNIError) {
        let store: EndpointStore
        do { store = try openStore() } catch {
            throw CNIError(.pluginNotAvailable, "the swiftpath store is not available", details: error.description)
        }
        let ipam: any AddressManager
        do { ipam = try addressManager(store: store) } catch {
            throw CNIError(.pluginNotAvailable, "IPAM is not usable", details: error.description)
        }
        try ipam.status()
    }
}
