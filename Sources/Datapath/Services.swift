// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CDatapathABI
import CLibBPF
import NetAddress

/// A service as the datapath has it: its backends, how long a client keeps its backend, whether
/// clients outside the node reach it, and which of them may.
public typealias ServiceProgram = (service: Service, backends: [Backend], affinitySeconds: UInt32, external: ExternalTraffic,
                                   sourceRanges: SourceRanges)

/// The services as the datapath balances them: each frontend's entry, its backends' slots, the
/// source ranges admitted from outside, and the pods' host ports (frontends of their own).
public struct ServiceMaps: DatapathPart {
    let pins: DatapathPins

    var servicesMap: BPFMap { get throws(BPFError) { try map(Layouts.services) } }
    var slotsMap: BPFMap { get throws(BPFError) { try map(Layouts.slots) } }
    var sourceRangesMap: BPFMap { get throws(BPFError) { try map(Layouts.sourceRanges) } }
}

extension ServiceMaps {
    /// Creates or replaces `service`'s backends, in the store's record and in the datapath. The
    /// new set is written under a fresh id first and the service entry swapped to it in one map
    /// update: a connect sees the old set or the new one. An empty set keeps the service, refusing
    /// new connections. Returns the backends that left the set (their sockets are the caller's to
    /// terminate). A Service on a pod's host port takes it over: the pod keeps its host port's
    /// record, and its teardown leaves the Service alone. `sourceRanges` limit which clients
    /// outside the node may open connections to it (nil: every one; a range of the whole family
    /// is no limit, one of the other family admits nobody).
    @discardableResult
    public func setService(_ service: Service, backends: [Backend], affinitySeconds: UInt32 = 0,
                           external: ExternalTraffic = .none, sourceRanges: SourceRanges = nil) throws(BPFError) -> [Backend] {
        try store.withLockOrThrow { () throws(BPFError) -> [Backend] in
            try write(service, backends: backends, affinitySeconds: affinitySeconds, external: external,
                      sourceRanges: sourceRanges, overHostPort: try store.hostPortOwner(service) != nil)
        }
    }

    /// `setService` for each of `programs`, the uplinks' source ranges read once for all. One that
    /// fails keeps none of the others from being written (a full trie, say, fails only the
    /// services that need room in it). Returns every backend that left a service, and the
    /// services that could not be written, with why.
    public func setServices(_ programs: [ServiceProgram]) throws(BPFError)
        -> (departures: [(service: Service, backend: Backend)], failures: [(service: Service, error: BPFError)]) {
        try store.withLockOrThrow { () throws(BPFError) in
            let admitted = try admittedSources()
            var departures: [(service: Service, backend: Backend)] = [], failures: [(service: Service, error: BPFError)] = []
            for entry in programs {
                do throws(BPFError) {
                    departures += try write(entry.service, backends: entry.backends, affinitySeconds: entry.affinitySeconds,
                                            external: entry.external, sourceRanges: entry.sourceRanges,
                                            overHostPort: try store.hostPortOwner(entry.service) != nil,
                                            admitted: admitted[entry.service] ?? AdmittedSources())
                        .map { (entry.service, $0) }
                } catch {
                    failures.append((entry.service, error))
                }
            }
            return (departures, failures)
        }
    }

    /// `setService` for a Service (`overHostPort` when a pod's host port is on its address and
    /// port) or for the host port itself; `admitted`, what the uplinks' trie holds for it, when the
    /// caller read it. The source ranges go in before the record and the service entry, so that no
    /// moment sees the service answered from outside without them.
    func write(_ service: Service, backends: [Backend], affinitySeconds: UInt32, external: ExternalTraffic,
               sourceRanges: SourceRanges = nil, overHostPort: Bool, admitted: AdmittedSources? = nil) throws(BPFError) -> [Backend] {
        try store.withLockOrThrow { () throws(BPFError) -> [Backend] in
            let record = try store.serviceRecord(service)
            var before = record?.backends ?? []
            if record == nil { before = try programmedBackends(service) }
            let ranges = effectiveSourceRanges(sourceRanges, family: service.address.family)
            if let ranges {
                let held: AdmittedSources
                if let admitted { held = admitted } else { held = try admittedSources()[service] ?? AdmittedSources() }
                try restrict(service, to: ranges, admitted: held)
            } else if let admitted {
                try unrestrict(service, admitting: admitted.ranges)
            } else {
                try unrestrict(service, admitting: record?.sourceRanges ?? [])
            }
            try store.recordService(service, backends: backends, affinitySeconds: affinitySeconds, external: external,
                                    overHostPort: overHostPort, sourceRanges: ranges)
            try program(service, backends: backends, affinitySeconds: affinitySeconds, external: external)
            let staying = Set(backends.map(\.endpoint))
            return before.filter { !staying.contains($0.endpoint) }
        }
    }

    /// Writes `service` into the datapath's maps (not into the store's record): its backends' slots,
    /// then those of its local backends for outside clients (externalTrafficPolicy Local).
    private func program(_ service: Service, backends: [Backend], affinitySeconds: UInt32, external: ExternalTraffic) throws(BPFError) {
        let key = sp_service_key(service)
        let services = try servicesMap, slots = try slotsMap
        let previous = try services.lookup(key, as: sp_service.self)
        var id = UInt32.random(in: 1...UInt32.max)
        while try slots.lookup(sp_slot_key(id: id, slot: 0), as: sp_backend.self) != nil { id = UInt32.random(in: 1...UInt32.max) }
        let table = SlotTable(service, backends: backends, external: external)
        for (slot, backend) in table.slots.enumerated() { try slots.upsert(sp_slot_key(id: id, slot: UInt32(slot)), sp_backend(backend)) }
        try services.upsert(key, table.entry(id: id, affinitySeconds: affinitySeconds))
        if let previous { try deleteSlots(previous) }
    }

    /// Removes `service`; one that had taken a pod's host port over gives it back to the pod.
    /// Returns its backends (all departed), or nil when there was no such service.
    @discardableResult
    public func deleteService(_ service: Service) throws(BPFError) -> [Backend]? {
        try store.withLockOrThrow { () throws(BPFError) -> [Backend]? in
            let recorded = try store.serviceRecord(service)
            let key = sp_service_key(service)
            let previous = try servicesMap.lookup(key, as: sp_service.self)
            guard recorded != nil || previous != nil else { return nil }
            let tookHostPortOver = try store.isServiceOverHostPort(service)
            try store.forgetService(service)
            if let previous {
                try servicesMap.delete(key)
                try deleteSlots(previous)
            }
            // Answered from outside no more: its source ranges are of no use, and go last.
            try unrestrict(service, admitting: recorded?.sourceRanges ?? [])
            if tookHostPortOver, try store.hostPortOwner(service) != nil, let backend = try store.hostPortBackend(service) {
                _ = try write(service, backends: [backend], affinitySeconds: 0, external: service.address.isLoopback ? .none : .cluster,
                              overHostPort: false)
            }
            if let recorded { return recorded.backends }
            return try previous.map { value throws(BPFError) in try slotBackends(of: value) } ?? []
        }
    }

    /// The backends the datapath has for `service` (a service programmed before the store kept records).
    private func programmedBackends(_ service: Service) throws(BPFError) -> [Backend] {
        guard let value = try servicesMap.lookup(sp_service_key(service), as: sp_service.self) else { return [] }
        return try slotBackends(of: value)
    }

    /// Rewrites the datapath's service maps and source ranges from the store's records: after a
    /// datapath whose service maps changed layout was loaded, they start empty.
    func reprogramServices() throws(BPFError) {
        let services = try servicesMap, slots = try slotsMap
        for raw in try services.rawKeys() { try services.delete(raw) }
        for raw in try slots.rawKeys() { try slots.delete(raw) }
        try refillSourceRanges()
        for entry in try store.recordedServices() {
            try program(entry.service, backends: entry.backends, affinitySeconds: entry.affinitySeconds, external: entry.external)
        }
    }

    /// Every service with its backends (weights recovered from the slots), its affinity timeout and
    /// its external traffic.
    public func programs() throws(BPFError) -> [ServiceProgram] {
        var result: [ServiceProgram] = []
        let admitted = try admittedSources()
        for key in try servicesMap.keys(as: sp_service_key.self) {
            guard let value = try servicesMap.lookup(key, as: sp_service.self), let service = Service(mapKey: key) else { continue }
            let external: ExternalTraffic = value.flags & SP_SERVICE_EXTERNAL == 0 ? .none
                : value.flags & SP_SERVICE_EXTERNAL_LOCAL == 0 ? .cluster
                : .local(try slotBackends(of: value.id, slots: value.slots..<(value.slots + value.external_slots)))
            result.append((service, try slotBackends(of: value), value.affinity_seconds, external, admitted[service]?.sourceRanges))
        }
        return result.sorted { $0.service.description < $1.service.description }
    }

    /// Makes the services exactly `desired`: sets every listed one, deletes every other. Pods'
    /// host ports are not the caller's to delete; a listed service on one takes it over. Returns
    /// the counts, every backend that left a service, and the services that could not be set.
    public func applyServices(_ desired: [ServiceProgram]) throws(BPFError)
        -> (set: Int, deleted: Int, departures: [(service: Service, backend: Backend)], failures: [(service: Service, error: BPFError)]) {
        try store.withLockOrThrow { () throws(BPFError) in
            let hostPorts = Set(try store.offeredHostPorts().keys)
            let written = try setServices(desired)
            var departures = written.departures
            let failures = written.failures
            let wanted = Set(desired.map(\.service))
            let existing = Set(try store.recordedServices().map(\.service))
                .union(try servicesMap.keys(as: sp_service_key.self).compactMap { Service(mapKey: $0) })
            var deleted = 0
            for service in existing.subtracting(wanted).subtracting(hostPorts).sorted(by: { $0.description < $1.description }) {
                departures += (try deleteService(service) ?? []).map { (service, $0) }
                deleted += 1
            }
            return (desired.count - failures.count, deleted, departures, failures)
        }
    }

    /// The backends in `service`'s slots, in slot order, weights recovered from repetitions.
    func slotBackends(of service: sp_service) throws(BPFError) -> [Backend] {
        try slotBackends(of: service.id, slots: 0..<service.slots)
    }

    private func slotBackends(of id: UInt32, slots: Range<UInt32>) throws(BPFError) -> [Backend] {
        var weights: [Backend: Int] = [:]
        var order: [Backend] = []
        for slot in slots {
            guard let raw = try slotsMap.lookup(sp_slot_key(id: id, slot: slot), as: sp_backend.self),
                  let backend = Backend(mapValue: raw) else { continue }
            if weights[backend] == nil { order.append(backend) }
            weights[backend, default: 0] += 1
        }
        return order.map { Backend(address: $0.address, port: $0.port, weight: weights[$0]!) }
    }

    private func deleteSlots(_ service: sp_service) throws(BPFError) {
        for slot in 0..<(service.slots + service.external_slots) { try slotsMap.delete(sp_slot_key(id: service.id, slot: slot)) }
    }
}

/// A service's backends as its slots lay them out: each backend in as many slots as its weight,
/// in order, the cluster's first; then, for clients from outside under externalTrafficPolicy Local,
/// the node's own backends again. bpf/lib/lb.h picks one of the first `slots` at random, or of the
/// `external_slots` after them: a backend's share is its weight.
struct SlotTable: Equatable {
    let slots: [Backend]
    let clusterSlots: UInt32
    let externalSlots: UInt32
    let flags: UInt32

    init(_ service: Service, backends: [Backend], external: ExternalTraffic) {
        let expand = { (backends: [Backend]) in backends.flatMap { Array(repeating: $0, count: $0.weight) } }
        let cluster = expand(backends), local = expand(external.localBackends)
        slots = cluster + local
        clusterSlots = UInt32(cluster.count)
        externalSlots = UInt32(local.count)
        var flags: UInt32 = service.address.isLoopback ? SP_SERVICE_NODE_NETNS_ONLY : 0
        switch external {
        case .none: break
        case .cluster: flags |= SP_SERVICE_EXTERNAL
        case .local: flags |= SP_SERVICE_EXTERNAL | SP_SERVICE_EXTERNAL_LOCAL
        }
        self.flags = flags
    }

    /// The service's entry, its slots written under `id`.
    func entry(id: UInt32, affinitySeconds: UInt32) -> sp_service {
        sp_service(id: id, slots: clusterSlots, flags: flags, affinity_seconds: affinitySeconds, external_slots: externalSlots, reserved: 0)
    }
}
