// SPDX-License-Identifier: Apache-2.0
import BPFObjects
import BPF
import NodeStore
import CDatapathABI
import CLibBPF
import Netns
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Terminating the sockets that still talk to backends which left their service.
extension Datapath {
    /// Aborts every TCP and UDP socket the load balancer translated to one of `departures`, in the
    /// caller's netns and in every netns of `namespaces` (the pods'), with bpf_sock_destroy() run
    /// from socket iterators. Sockets to other backends, and sockets the LB did not translate, are
    /// left alone. Returns how many sockets were terminated.
    public func terminate(departures: [(service: Service, backend: Backend)], namespaces: [String]) throws(BPFError) -> Int {
        guard !departures.isEmpty else { return 0 }
        try forgetChoices(of: departures)
        // Loading the sweep costs far more than walking the LB's record of the sockets it
        // translated: when none went to a departed backend, there is nothing to terminate.
        guard try anySocketTranslated(to: departures.map(\.backend)) else { return 0 }
        // Loaded for this sweep only (see bpf/terminate.c): it shares the LB's pinned maps, and
        // its departures and count maps are its own, gone with it.
        let object = BPFObject.terminate
        let loaded = try BPFObjectLoader.load(name: object.name, bytes: object.bytes, mapFolder: folder, pinning: .guest)
        let departuresMap = try loaded.privateMap(Layouts.departures)
        let terminated = try loaded.privateMap(Layouts.terminated)
        for departure in departures {
            try departuresMap.upsert(sp_departure(service: serviceKey(departure.service), backend: backendValue(departure.backend)), UInt8(1))
        }

        var links: [BPFLink] = []
        for name in ["sock_terminate_tcp", "sock_terminate_udp"] {
            guard let program = loaded.programs[name] else { throw BPFError("BPF object \(object.name) lacks \(name)") }
            links.append(try BPFLink.attachIterator(program))
        }
        // An iterator walks the netns of the thread that creates it: enter each, then create.
        try sweep(links)
        for path in Set(namespaces).sorted() {
            guard let namespace = try? NetworkNamespace.open(path) else { continue }   // gone with its pod
            let swept: Result<Void, BPFError>
            do { swept = try namespace.run { () throws(BPFError) in try sweep(links) } } catch {
                throw BPFError("enter \(path)", error.errno)
            }
            try swept.get()
        }
        return Int(try terminated.lookup(UInt32(0), as: UInt64.self) ?? 0)
    }

    /// Whether any live socket was translated to one of `backends` (the translation map's keys
    /// name the backend; the service does not matter here, the sweep matches both).
    private func anySocketTranslated(to backends: [Backend]) throws(BPFError) -> Bool {
        let departed = Set(backends.map(\.endpoint))
        return try map(Layouts.translations).keys(as: sp_translation_key.self).contains { key in
            Self.backend(key.backend).map { departed.contains($0.endpoint) } ?? false
        }
    }

    private func sweep(_ links: [BPFLink]) throws(BPFError) {
        for link in links { try link.iterate() }
    }

    /// Unconnected UDP sockets, and clients with affinity, remember a backend per service; departed
    /// ones are forgotten, so the next datagram or connect picks a live backend.
    private func forgetChoices(of departures: [(service: Service, backend: Backend)]) throws(BPFError) {
        let gone = Set(departures.map { "\($0.service)|\($0.backend.endpoint)" })
        func departed(_ key: sp_service_key, _ value: sp_backend) -> Bool {
            guard let service = Self.service(key), let backend = Self.backend(value) else { return false }
            return gone.contains("\(service)|\(backend.endpoint)")
        }
        try map(Layouts.sticky).removeAll(keys: sp_sticky_key.self, values: sp_backend.self) {
            departed($0.service, $1)
        }
        try map(Layouts.affinity).removeAll(keys: sp_affinity_key.self, values: sp_affinity.self) {
            departed($0.service, $1.backend)
        }
    }
}
