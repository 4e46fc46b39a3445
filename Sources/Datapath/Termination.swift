import BPFStore
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
    public func terminate(departures: [(service: Service, backend: Backend)], namespaces: [String]) throws(StoreError) -> Int {
        guard !departures.isEmpty else { return 0 }
        let departuresMap = try Self.map(folder, Layouts.departures), terminated = try Self.map(folder, Layouts.terminated)
        let marked = departures.map { sp_departure(service: serviceKey($0.service), backend: backendValue($0.backend)) }
        for departure in marked { try departuresMap.upsert(departure, UInt8(1)) }
        defer { for departure in marked { _ = try? departuresMap.delete(departure) } }
        try terminated.upsert(UInt32(0), UInt64(0))
        try forgetStickyChoices(of: departures)

        var links: [BPFLink] = []
        for name in ["sock_terminate_tcp", "sock_terminate_udp"] {
            guard let program = try BPFProgram.pinned(at: "\(folder)/\(name)") else {
                throw StoreError("the datapath program \(name) is not pinned in \(folder)")
            }
            links.append(try BPFLink.attachIterator(program))
        }
        // An iterator walks the netns of the thread that creates it: enter each, then create.
        try sweep(links)
        for path in Set(namespaces).sorted() {
            guard let namespace = try? NetworkNamespace.open(path) else { continue }   // gone with its pod
            do { try namespace.run { try sweep(links) } } catch let error as StoreError { throw error } catch {
                throw StoreError("enter \(path): \(error)")
            }
        }
        return Int(try terminated.lookup(UInt32(0), as: UInt64.self) ?? 0)
    }

    private func sweep(_ links: [BPFLink]) throws(StoreError) {
        for link in links { try link.iterate() }
    }

    /// Unconnected UDP sockets remember their backend per service; departed ones are forgotten,
    /// so the next datagram picks a live backend.
    private func forgetStickyChoices(of departures: [(service: Service, backend: Backend)]) throws(StoreError) {
        let sticky = try Self.map(folder, Layouts.sticky)
        let gone = Set(departures.map { "\($0.service)|\($0.backend.address)|\($0.backend.port)" })
        for key in try sticky.keys(as: sp_sticky_key.self) {
            guard let value = try sticky.lookup(key, as: sp_backend.self), let service = Self.service(key.service),
                  let backend = Self.backend(value), gone.contains("\(service)|\(backend.address)|\(backend.port)") else { continue }
            try sticky.delete(key)
        }
    }
}
