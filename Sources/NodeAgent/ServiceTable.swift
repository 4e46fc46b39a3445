// SPDX-License-Identifier: Apache-2.0
import KubernetesAPI
import NetAddress
import NodeStore

/// The socket load balancer's services as kube-proxy would program them from the API's Services
/// and EndpointSlices: which addresses and ports a Service answers on, and which endpoints serve
/// each. Pure: the agent compares one table with the next and writes only the difference.
struct ServiceTable: Equatable {
    struct Entry: Equatable, Sendable {
        var backends: [Backend]
        var affinitySeconds: UInt32
    }

    /// Every service address, port and protocol, with its backends (sorted; empty: connections
    /// are refused, as kube-proxy refuses them for a Service without endpoints).
    var entries: [NodeStore.Service: Entry] = [:]
    /// Ports swiftpath does not balance (SCTP), as "namespace/name:port/SCTP".
    var unsupported: [String] = []

    /// The label by which another proxy claims a Service.
    static let serviceProxyNameLabel = "service.kubernetes.io/service-proxy-name"
    /// kube-proxy's default for `sessionAffinityConfig.clientIP.timeoutSeconds`.
    static let defaultAffinitySeconds: UInt32 = 10800

    init() {}

    init(services: [String: KubernetesAPI.Service], slices: [String: EndpointSlice], nodeName: String) {
        var slicesByService: [String: [EndpointSlice]] = [:]
        for slice in slices.values {
            guard let owner = slice.metadata.labels?[EndpointSlice.serviceNameLabel] else { continue }
            slicesByService[(slice.metadata.namespace ?? "") + "/" + owner, default: []].append(slice)
        }
        for (key, service) in services where Self.isProxied(service) {
            add(service, key: key, slices: slicesByService[key] ?? [], nodeName: nodeName)
        }
        unsupported.sort()
    }

    /// Headless and ExternalName Services have no address to balance; a Service labelled with a
    /// service-proxy-name belongs to another proxy.
    static func isProxied(_ service: KubernetesAPI.Service) -> Bool {
        guard let spec = service.spec else { return false }
        if spec.type == "ExternalName" || spec.clusterIP == "None" { return false }
        return service.metadata.labels?[serviceProxyNameLabel] == nil
    }

    private mutating func add(_ service: KubernetesAPI.Service, key: String, slices: [EndpointSlice], nodeName: String) {
        guard let spec = service.spec else { return }
        let clusterIPs = (spec.clusterIPs ?? spec.clusterIP.map { [$0] } ?? []).compactMap { IPAddress($0) }
        let externalIPs = (spec.externalIPs ?? []).compactMap { IPAddress($0) }
            + (service.status?.loadBalancer?.ingress ?? []).compactMap { $0.ip.flatMap { IPAddress($0) } }
        let affinity = spec.sessionAffinity == "ClientIP"
            ? UInt32(clamping: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? Int(Self.defaultAffinitySeconds)) : 0
        // internalTrafficPolicy governs the cluster IPs; traffic to an external address from inside
        // the cluster goes to every endpoint, as kube-proxy short-circuits it.
        let localOnly = spec.internalTrafficPolicy == "Local"
        for port in spec.ports ?? [] {
            let protocolName = port.protocol ?? "TCP"
            guard let proto = NodeStore.Service.TransportProtocol(rawValue: protocolName.lowercased()),
                  let number = UInt16(exactly: port.port) else {
                unsupported.append("\(key):\(port.port)/\(protocolName)")
                continue
            }
            for (addresses, local) in [(clusterIPs, localOnly), (externalIPs, false)] {
                for address in addresses {
                    let backends = Self.backends(for: port, family: address.family, slices: slices, nodeName: local ? nodeName : nil)
                    entries[NodeStore.Service(address: address, port: number, proto: proto)] = Entry(backends: backends, affinitySeconds: affinity)
                }
            }
        }
    }

    /// kube-proxy's choice of endpoints for one Service port and family: slice ports matched by
    /// name and protocol; the ready endpoints, or when none is ready the serving and terminating
    /// ones; absent conditions count as ready and serving, not terminating. With `nodeName`, that
    /// node's endpoints only.
    static func backends(for port: KubernetesAPI.Service.Port, family: IPAddress.Family, slices: [EndpointSlice], nodeName: String?) -> [Backend] {
        var ready = Set<Backend>(), terminating = Set<Backend>()
        let addressType = family == .v4 ? "IPv4" : "IPv6"
        for slice in slices where slice.addressType == addressType {
            guard let match = (slice.ports ?? []).first(where: { ($0.name ?? "") == (port.name ?? "") && ($0.protocol ?? "TCP") == (port.protocol ?? "TCP") }),
                  let number = match.port.flatMap({ UInt16(exactly: $0) }) else { continue }
            for endpoint in slice.endpoints ?? [] {
                if let nodeName, endpoint.nodeName != nodeName { continue }
                let isReady = endpoint.conditions?.ready ?? true
                let isServing = endpoint.conditions?.serving ?? isReady
                let isTerminating = endpoint.conditions?.terminating ?? false
                for text in endpoint.addresses {
                    guard let address = IPAddress(text), address.family == family else { continue }
                    let backend = Backend(address: address, port: number)
                    if isReady { ready.insert(backend) } else if isServing && isTerminating { terminating.insert(backend) }
                }
            }
        }
        return (ready.isEmpty ? terminating : ready).sorted { ($0.address, $0.port) < ($1.address, $1.port) }
    }

    /// What to write to go from `self` to `next`: services to set (new or changed) and to delete.
    func changes(to next: ServiceTable) -> (set: [(NodeStore.Service, Entry)], delete: [NodeStore.Service]) {
        let set = next.entries.filter { entries[$0.key] != $0.value }.sorted { $0.key.description < $1.key.description }
        let delete = entries.keys.filter { next.entries[$0] == nil }.sorted { $0.description < $1.description }
        return (set.map { ($0.key, $0.value) }, delete)
    }
}
