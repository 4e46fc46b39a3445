// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CDatapathABI

/// A pod's host ports (CNI `portMappings`): each `hostIP:hostPort` is a service answered from
/// outside the node at its uplinks and, through the socket hooks, from the node and its pods, with
/// the pod's `containerPort` as its one backend. The attachment owns them (recorded in the store):
/// its teardown removes them, and the node's Service programming leaves them alone.
extension Datapath {
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
    /// and the first taken one comes back with its holder. Ports `owner` already holds are rewritten.
    public func claimHostPorts(_ ports: [(service: Service, backend: Backend)], owner: String) throws(BPFError)
        -> (service: Service, holder: HostPortHolder)? {
        try store.withLockOrThrow { () throws(BPFError) -> (service: Service, holder: HostPortHolder)? in
            for (service, _) in ports {
                if let holder = try store.hostPortOwner(service) {
                    if holder != owner { return (service, .attachment(holder)) }
                    continue
                }
                if try store.serviceRecord(service) != nil { return (service, .service) }
                if try servicesMap.lookup(serviceKey(service), as: sp_service.self) != nil { return (service, .service) }
            }
            for (service, backend) in ports {
                try store.recordHostPort(service, owner: owner)
                try setService(service, backends: [backend], external: .cluster)
            }
            return nil
        }
    }

    /// Removes `owner`'s host ports from the datapath and the store, and forgets the connections
    /// from outside translated to them. Returns the services removed.
    @discardableResult
    public func releaseHostPorts(owner: String) throws(BPFError) -> [Service] {
        try store.withLockOrThrow { () throws(BPFError) -> [Service] in
            let owned = try store.hostPorts(ownedBy: owner)
            var departures: [(service: Service, backend: Backend)] = []
            for service in owned {
                departures += (try deleteService(service) ?? []).map { (service, $0) }
                try store.forgetHostPort(service)
            }
            _ = try forgetConnections(departures)
            return owned
        }
    }
}
