// SPDX-License-Identifier: Apache-2.0
import BPF
import Datapath
import NodeStore

/// Writing a ServiceTable's changes into the socket load balancer, so that an unchanged service
/// keeps its id and slots and a relist or a restart writes nothing; then the sockets still aimed at
/// a departed backend are terminated, on the node and in every pod, and the connections from outside
/// translated to it forgotten.
enum ServicePrograms {
    struct Outcome {
        var written = 0
        var deleted = 0
        var departed = 0
        var terminated = 0
        /// Pods' netns the sweep could not enter, with why.
        var unreachable: [String] = []
        /// Services that could not be written, with why (the others were).
        var failed: [String] = []
    }

    /// What the datapath holds now, backends sorted as the table sorts them; pods' host ports,
    /// which are the plugin's, left out (not those a Service took over: they are the Service's).
    static func programmed(storeRoot: String) throws(BPFError) -> ServiceTable {
        let store = try EndpointStore.open(root: storeRoot)
        let datapath = try Datapath.open(store: store)
        let hostPorts = try store.offeredHostPorts()
        var entries: [NodeStore.Service: ServiceTable.Entry] = [:]
        for entry in try datapath.services.programs() where hostPorts[entry.service] == nil {
            let external: ExternalTraffic = switch entry.external {
            case .local(let local): .local(local.sorted { ($0.address, $0.port) < ($1.address, $1.port) })
            case let other: other
            }
            entries[entry.service] = .init(backends: entry.backends.sorted { ($0.address, $0.port) < ($1.address, $1.port) },
                                           affinitySeconds: entry.affinitySeconds, external: external, sourceRanges: entry.sourceRanges)
        }
        return ServiceTable(programmed: entries)
    }

    static func apply(_ changes: ServiceTable.Changes, storeRoot: String) throws(BPFError) -> Outcome {
        guard !changes.isEmpty else { return Outcome() }
        let store = try EndpointStore.open(root: storeRoot)
        let datapath = try Datapath.open(store: store)
        // A Service wins over a pod's host port on the same address and port: the address is the
        // cluster's. The pod keeps its record of the host port; its teardown leaves the Service.
        let hostPorts = try store.offeredHostPorts()
        let written = try datapath.services.setServices(changes.set.map { service, entry in
            (service, entry.backends, entry.affinitySeconds, entry.external, entry.sourceRanges)
        })
        var departures = written.departures
        let failures = written.failures
        for service in changes.delete where hostPorts[service] == nil {
            departures += (try datapath.services.deleteService(service) ?? []).map { (service, $0) }
        }
        var outcome = Outcome(written: changes.set.count - failures.count, deleted: changes.delete.count, departed: departures.count)
        if !departures.isEmpty {
            try datapath.connections.forget(departures)
            let namespaces = try store.records().map(\.netns).filter { !$0.isEmpty }
            let sweep = try datapath.connections.terminate(departures: departures, namespaces: namespaces)
            outcome.terminated = sweep.terminated
            outcome.unreachable = sweep.unreachable.map { "\($0.path): \($0.error)" }
        }
        outcome.failed = failures.map { "\($0.service): \($0.error)" }
        return outcome
    }
}
