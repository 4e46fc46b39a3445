// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CDatapathABI

/// A pod's host ports (CNI `portMappings`): each `hostIP:hostPort` is a service answered from
/// outside the node at its uplinks and, through the socket hooks, from the node and its pods, with
/// the pod's `containerPort` as its one backend. The attachment owns them (recorded in the store):
/// its teardown removes them. A Service programmed later on the same address and port takes the
/// datapath entry over (the Service is the cluster's, the pod only a tenant of the node); the pod
/// keeps its record, and its teardown then leaves the Service's entry alone.
extension ServiceMaps {
    /// Who already holds an address and port a pod asked for.
    public enum HostPortHolder: Equatable, Sendable, CustomStringConvertible {
        /// Another attachment's host port (its host device name).
        case attachment(String)
        /// A service that is not a host port (a Kubernetes Service, one set by hand).
        case service

        public var description: String {
            switch self {
            case .attachment(let name): "the host port of \(name)"
            case .service: "a service"
            }
        }
    }

    /// Programs `ports` as host ports of `owner`, unless one of them is taken: then nothing changes
    /// and the first taken one comes back with its holder. Ports `owner` already holds are rewritten,
    /// except those a Service took over. A loopback host port is the node's own (the socket hooks
    /// answer it in the node's netns only): it is never offered at the uplinks.
    public func claimHostPorts(_ ports: [(service: Service, backend: Backend)], owner: String) throws(BPFError)
        -> (service: Service, holder: HostPortHolder)? {
        try store.withLockOrThrow { () throws(BPFError) -> (service: Service, holder: HostPortHolder)? in
            var claimed: [(service: Service, backend: Backend)] = []
            for (service, backend) in ports {
                if let holder = try store.hostPortOwner(service) {
                    if holder != owner { return (service, .attachment(holder)) }
                    if try store.isServiceOverHostPort(service) { continue }
                } else {
                    if try store.serviceRecord(service) != nil { return (service, .service) }
                    if try servicesMap.lookup(sp_service_key(service), as: sp_service.self) != nil { return (service, .service) }
                }
                claimed.append((service, backend))
            }
            for (service, backend) in claimed {
                try store.recordHostPort(service, owner: owner, backend: backend)
                try write(service, backends: [backend], affinitySeconds: 0, external: service.address.isLoopback ? .none : .cluster,
                          overHostPort: false)
            }
            return nil
        }
    }

    /// Removes `owner`'s host ports from the datapath and the store, and forgets the connections
    /// from outside translated to them. A Service that took one over stays. Returns the host ports
    /// released.
    @discardableResult
    public func releaseHostPorts(owner: String) throws(BPFError) -> [Service] {
        try store.withLockOrThrow { () throws(BPFError) -> [Service] in
            let owned = try store.hostPorts(ownedBy: owner)
            var departures: [(service: Service, backend: Backend)] = []
            for service in owned {
                if !(try store.isServiceOverHostPort(service)) {
                    departures += (try deleteService(service) ?? []).map { (service, $0) }
                }
                try store.forgetHostPort(service)
            }
            _ = try Connections(pins: pins).forget(departures)
            return owned
        }
    }
}
