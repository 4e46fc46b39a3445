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

/// What a termination sweep did: the sockets it terminated, and the pods' netns it could not
/// enter (a netns gone with its pod is none of them), whose sockets it could not see.
public struct TerminationSweep: Equatable, Sendable {
    public var terminated = 0
    public var unreachable: [(path: String, error: SystemCallError)] = []

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.terminated == rhs.terminated && lhs.unreachable.map(\.path) == rhs.unreachable.map(\.path)
    }
}

/// Terminating the sockets that still talk to backends which left their service.
extension Connections {
    /// Aborts every TCP and UDP socket the load balancer translated to one of `departures`, in the
    /// caller's netns and in every netns of `namespaces` (the pods'), with bpf_sock_destroy() run
    /// from socket iterators. Sockets to other backends, and sockets the LB did not translate, are
    /// left alone. A netns that cannot be entered is skipped and named in the result; one that no
    /// longer exists (its pod gone) is not.
    public func terminate(departures: [(service: Service, backend: Backend)], namespaces: [String]) throws(BPFError) -> TerminationSweep {
        guard !departures.isEmpty else { return TerminationSweep() }
        try forgetChoices(of: departures)
        // Loading the sweep costs far more than walking the LB's record of the sockets it
        // translated: when none went to a departed backend, there is nothing to terminate.
        guard try anySocketTranslated(to: departures.map(\.backend)) else { return TerminationSweep() }
        // Loaded for this sweep only (see bpf/terminate.c): it shares the LB's pinned maps, and
        // its departures and count maps are its own, gone with it.
        let object = BPFObject.terminate
        let loaded = try BPFObjectLoader.load(name: object.name, bytes: object.bytes, mapFolder: folder, pinning: .guest)
        let departuresMap = try loaded.privateMap(Layouts.departures)
        let terminated = try loaded.privateMap(Layouts.terminated)
        for departure in departures {
            try departuresMap.upsert(sp_departure(service: sp_service_key(departure.service), backend: sp_backend(departure.backend)), UInt8(1))
        }

        var links: [BPFLink] = []
        for name in ["sock_terminate_tcp", "sock_terminate_udp"] {
            guard let program = loaded.programs[name] else { throw BPFError("BPF object \(object.name) lacks \(name)") }
            links.append(try BPFLink.attachIterator(program))
        }
        // An iterator walks the netns of the thread that creates it: enter each, then create.
        try sweep(links)
        var result = TerminationSweep()
        for path in Set(namespaces).sorted() {
            let swept: Result<Void, BPFError>
            do {
                let namespace = try NetworkNamespace.open(path)
                swept = try namespace.run { () throws(BPFError) in try sweep(links) }
            } catch {
                if error.errno != .noSuchFileOrDirectory { result.unreachable.append((path, error)) }
                continue
            }
            try swept.get()
        }
        result.terminated = Int(try terminated.lookup(UInt32(0), as: UInt64.self) ?? 0)
        return result
    }

    /// Whether any live socket was translated to one of `backends` (the translation map's keys
    /// name the backend; the service does not matter here, the sweep matches both).
    private func anySocketTranslated(to backends: [Backend]) throws(BPFError) -> Bool {
        let departed = Set(backends.map(\.endpoint))
        return try map(Layouts.translations).keys(as: sp_translation_key.self).contains { key in
            Backend(mapValue: key.backend).map { departed.contains($0.endpoint) } ?? false
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
            guard let service = Service(mapKey: key), let backend = Backend(mapValue: value) else { return false }
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
