// SPDX-License-Identifier: Apache-2.0
import BPF
import Datapath
import NodeStore

/// Writing a ServiceTable into the socket load balancer: only what differs from what is
/// programmed, so that an unchanged service keeps its id and slots and a relist or a restart
/// writes nothing; then the sockets still aimed at a departed backend are terminated, on the node
/// and in every pod.
enum ServicePrograms {
    struct Outcome {
        var written = 0
        var deleted = 0
        var departed = 0
        var terminated = 0
    }

    /// `programmed` is what the agent wrote last; nil reads it back from the datapath (after a
    /// restart, say).
    static func apply(_ desired: ServiceTable, over programmed: ServiceTable?, storeRoot: String) throws(BPFError) -> Outcome {
        let store = try EndpointStore.open(root: storeRoot)
        let datapath = try Datapath.open(store: store)
        let current: ServiceTable
        if let programmed { current = programmed } else { current = try ServiceTable(programmedIn: datapath) }
        let changes = current.changes(to: desired)
        var departures: [(service: Service, backend: Backend)] = []
        for (service, entry) in changes.set {
            departures += try datapath.setService(service, backends: entry.backends, affinitySeconds: entry.affinitySeconds).map { (service, $0) }
        }
        for service in changes.delete {
            departures += (try datapath.deleteService(service) ?? []).map { (service, $0) }
        }
        var outcome = Outcome(written: changes.set.count, deleted: changes.delete.count, departed: departures.count)
        if !departures.isEmpty {
            let namespaces = try store.records().map(\.netns).filter { !$0.isEmpty }
            outcome.terminated = try datapath.terminate(departures: departures, namespaces: namespaces)
        }
        return outcome
    }
}

extension ServiceTable {
    /// The services the datapath holds now, backends sorted as the table sorts them.
    init(programmedIn datapath: Datapath) throws(BPFError) {
        self.init()
        for entry in try datapath.services() {
            entries[entry.service] = Entry(backends: entry.backends.sorted { ($0.address, $0.port) < ($1.address, $1.port) },
                                           affinitySeconds: entry.affinitySeconds)
        }
    }
}
