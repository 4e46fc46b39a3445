// SPDX-License-Identifier: Apache-2.0
import BPF
import CLibBPF

/// Which services are a pod's host ports (CNI `portMappings`), and whose: the attachment's host
/// device name owns them. Its own small map, so that a DEL finds its host ports without reading
/// every service, and whoever programs the node's Services (the agent, `service apply`) can tell
/// them apart: a Service written on a host port's address and port takes it over (its service
/// record says so), and the pod's teardown then forgets only the host port, not the Service. The
/// pod's own backend is kept beside it, so that a Service that took the port over and goes gives
/// it back to the pod.
public enum HostPortRecord {
    static let ownerSize = 16
    static let layout = BPFMap.Layout(name: "sp_host_ports", type: BPF_MAP_TYPE_HASH,
                                      keySize: ServiceRecord.keySize, valueSize: ownerSize, maxEntries: 16_384)
    static let backendSize = 20
    static let backendLayout = BPFMap.Layout(name: "sp_host_port_backends", type: BPF_MAP_TYPE_HASH,
                                             keySize: ServiceRecord.keySize, valueSize: backendSize, maxEntries: 16_384)

    static func value(backend: Backend) -> [UInt8] {
        var writer = FixedWriter()
        writer.address(backend.address)
        writer.integer(backend.port)
        return writer.padded(to: backendSize)
    }

    static func backend(in value: [UInt8]) -> Backend? {
        var reader = FixedReader(value)
        guard let address = reader.address() else { return nil }
        return Backend(address: address, port: reader.integer())
    }

    static func key(_ service: Service) -> [UInt8] { ServiceRecord.key(service, chunk: 0) }

    static func value(owner: String) -> [UInt8] {
        var writer = FixedWriter()
        writer.string(owner, size: ownerSize)
        return writer.bytes
    }

    static func owner(in value: [UInt8]) -> String {
        var reader = FixedReader(value)
        return reader.string(size: ownerSize)
    }
}

extension EndpointStore {
    /// The attachment (host device name) whose host port `service` is, or nil when it is none.
    public func hostPortOwner(_ service: Service) throws(BPFError) -> String? {
        try hostPorts.lookup(HostPortRecord.key(service)).map(HostPortRecord.owner(in:))
    }

    /// Records `service` as a host port of the attachment `owner`, going to the pod's `backend`.
    public func recordHostPort(_ service: Service, owner: String, backend: Backend? = nil) throws(BPFError) {
        precondition(owner.utf8.count < HostPortRecord.ownerSize, "host device names are at most 15 bytes")
        if let backend { try hostPortBackends.upsert(HostPortRecord.key(service), HostPortRecord.value(backend: backend)) }
        try hostPorts.upsert(HostPortRecord.key(service), HostPortRecord.value(owner: owner))
    }

    public func forgetHostPort(_ service: Service) throws(BPFError) {
        try hostPorts.delete(HostPortRecord.key(service))
        try hostPortBackends.delete(HostPortRecord.key(service))
    }

    /// The pod's backend of the host port `service` (none for one recorded before they were kept).
    public func hostPortBackend(_ service: Service) throws(BPFError) -> Backend? {
        try hostPortBackends.lookup(HostPortRecord.key(service)).flatMap(HostPortRecord.backend(in:))
    }

    /// Every host port on the node, with its owner.
    public func recordedHostPorts() throws(BPFError) -> [Service: String] {
        var owners: [Service: String] = [:]
        for key in try hostPorts.rawKeys() {
            guard let (service, _) = ServiceRecord.service(key: key), let value = try hostPorts.lookup(key) else { continue }
            owners[service] = HostPortRecord.owner(in: value)
        }
        return owners
    }

    /// The host ports whose datapath entry is still the pod's own, with their owners: those no
    /// Service has taken over.
    public func offeredHostPorts() throws(BPFError) -> [Service: String] {
        var offered: [Service: String] = [:]
        for (service, owner) in try recordedHostPorts() where !(try isServiceOverHostPort(service)) { offered[service] = owner }
        return offered
    }

    /// The host ports of `owner`.
    public func hostPorts(ownedBy owner: String) throws(BPFError) -> [Service] {
        try recordedHostPorts().filter { $0.value == owner }.map(\.key).sorted { $0.description < $1.description }
    }
}

extension EndpointStore {
    /// Forgets `owner`'s host ports and their service records (not those of Services that took
    /// one over); returns them. What a teardown does when the datapath is not there to delete them from.
    @discardableResult
    public func forgetHostPorts(ownedBy owner: String) throws(BPFError) -> [Service] {
        try withLockOrThrow { () throws(BPFError) -> [Service] in
            let owned = try hostPorts(ownedBy: owner)
            for service in owned {
                if !(try isServiceOverHostPort(service)) { try forgetService(service) }
                try forgetHostPort(service)
            }
            return owned
        }
    }
}
