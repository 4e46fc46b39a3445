// SPDX-License-Identifier: Apache-2.0
import KubernetesAPI
import NetAddress
import NodeStore

/// The socket load balancer's services as kube-proxy would program them from the API's Services
/// and EndpointSlices: which addresses and ports a Service answers on, and which endpoints serve
/// each. Kept one Service at a time: a change to a Service or to one of its slices recomputes that
/// Service's entries only and yields just what to write.
struct ServiceTable {
    struct Entry: Equatable, Sendable {
        var backends: [Backend]
        var affinitySeconds: UInt32
        /// Whether clients outside the node reach it (node ports, external and LoadBalancer IPs),
        /// and with externalTrafficPolicy Local the node's own endpoints they get.
        var external: ExternalTraffic = .none
        /// Which clients outside the node may connect (a LoadBalancer's source ranges, on its
        /// external and ingress IPs); nil: every one.
        var sourceRanges: SourceRanges = nil
    }

    /// What a Service's health check node port answers (externalTrafficPolicy Local): whether
    /// this node has an endpoint of it.
    struct HealthCheck: Equatable, Sendable {
        var namespace: String
        var name: String
        var localEndpoints: Int
    }

    /// What to write to the maps: services to set (new or changed) and to delete.
    struct Changes {
        var set: [(service: NodeStore.Service, entry: Entry)] = []
        var delete: [NodeStore.Service] = []
        var isEmpty: Bool { self.set.isEmpty && delete.isEmpty }
    }

    /// Every service address, port and protocol, with its backends (sorted; empty: connections
    /// are refused, as kube-proxy refuses them for a Service without endpoints).
    private(set) var entries: [NodeStore.Service: Entry] = [:]
    /// The entries each Service (namespace/name) asks for, whether or not it holds them.
    private var claimsOf: [String: [NodeStore.Service: Entry]] = [:]
    /// The Services asking for each address, port and protocol (see `holder(of:)`).
    private var claimersOf: [NodeStore.Service: Set<String>] = [:]
    /// When each Service was created (RFC 3339, as the API server writes it: ordered as text;
    /// `unknownCreation` when it gave none).
    private var createdOf: [String: String] = [:]
    /// Sorts after every time the API server writes: a Service of unknown age ranks last.
    private static let unknownCreation = "~"
    /// The external addresses each Service claims, with their kind, for its refusals.
    private var externalKindsOf: [String: [IPAddress: ServiceAddressPolicy.Kind]] = [:]
    /// Ports each Service has that swiftpath does not balance (SCTP), as "namespace/name:port/SCTP".
    private var unsupportedOf: [String: [String]] = [:]

    /// The external addresses each Service (namespace/name) claims that are not programmed.
    private var refusedOf: [String: [ServiceAddressPolicy.Refusal]] = [:]

    /// The cluster IPs of each Service, and how many Services hold each address: no Service may
    /// claim another's cluster IP as an external address (its entry would replace the other's),
    /// whether or not the service CIDRs are configured.
    private var clusterIPsOf: [String: [IPAddress]] = [:]
    private var clusterIPHolders: [IPAddress: Int] = [:]
    /// The Services that claim external addresses: recomputed whenever a cluster IP comes or goes,
    /// or the API servers' addresses change.
    private var claimants = Set<String>()
    /// The API servers' addresses: the endpoints of `default/kubernetes` and the one the agent
    /// was given. No Service may claim them: the node's own processes, kubelet's among them, would
    /// send their credentials to its backends.
    private var controlPlane = Set<IPAddress>()

    /// The health check node port of each Service (namespace/name) that has one.
    private var healthCheckOf: [String: (port: UInt16, check: HealthCheck)] = [:]

    var unsupported: [String] { unsupportedOf.values.flatMap { $0 }.sorted() }

    /// The Services (namespace/name) that claim addresses the policy refuses or another Service
    /// holds, and those addresses.
    var refusals: [String: [ServiceAddressPolicy.Refusal]] {
        var result = refusedOf
        for (service, claimers) in claimersOf where claimers.count > 1 {
            let holder = holder(of: service)
            for key in claimers where key != holder {
                guard let kind = externalKindsOf[key]?[service.address] else { continue }
                let refusal = ServiceAddressPolicy.Refusal(address: service.address, kind: kind, reason: holder == nil ? .contested : .taken)
                if !(result[key] ?? []).contains(refusal) { result[key, default: []].append(refusal) }
            }
        }
        return result.mapValues { $0.sorted { $0.description < $1.description } }
    }

    /// The Service that holds `service`'s address, port and protocol when several ask for it. An
    /// external IP is whatever its Service's writer chose: it outranks no other claim, or a tenant
    /// could take another's address by naming it (in an old Service, or when the holder is
    /// recreated). Claims the cluster assigns (cluster IPs, node ports, ingress IPs a controller
    /// wrote into a status) can hold it, the first created first; when only external IPs ask,
    /// nobody gets it.
    private func holder(of service: NodeStore.Service) -> String? {
        guard let claimers = claimersOf[service] else { return nil }
        if claimers.count == 1 { return claimers.first }
        return claimers.filter { externalKindsOf[$0]?[service.address] != .externalIP }
            .min { (createdOf[$0] ?? Self.unknownCreation, $0) < (createdOf[$1] ?? Self.unknownCreation, $1) }
    }

    /// The Service whose endpoints are the API servers.
    static let apiServerService = "default/kubernetes"

    /// What each health check node port answers.
    var healthChecks: [UInt16: HealthCheck] {
        Dictionary(healthCheckOf.values.map { ($0.port, $0.check) }) { first, _ in first }
    }

    /// The label by which another proxy claims a Service.
    static let serviceProxyNameLabel = "service.kubernetes.io/service-proxy-name"
    /// kube-proxy's default for `sessionAffinityConfig.clientIP.timeoutSeconds`.
    static let defaultAffinitySeconds: UInt32 = 10800

    /// The node a table is computed for: its name (for `internalTrafficPolicy: Local`), the
    /// addresses its own processes and pods reach node ports on, and which external addresses of
    /// Services it may answer for.
    struct NodeView: Equatable, Sendable {
        var name: String
        var addresses: [IPAddress] = []
        var addressPolicy = ServiceAddressPolicy()

        /// The Node's InternalIP and ExternalIP addresses, and localhost of both families (the
        /// datapath translates loopback addresses for the node's own sockets only).
        init(_ node: Node?, name: String) {
            self.name = name
            addresses = Set((node?.ipAddresses ?? []).compactMap { IPAddress($0) } + Self.localhost).sorted()
        }

        static let localhost = [IPAddress("127.0.0.1")!, IPAddress("::1")!]

        init(name: String, addresses: [IPAddress] = []) {
            self.name = name
            self.addresses = addresses
        }
    }

    init() {}

    /// A table of these entries, as they are programmed (no Service to file them under).
    init(programmed entries: [NodeStore.Service: Entry]) { self.entries = entries }

    init(services: [String: KubernetesAPI.Service], slices: SliceIndex, node: NodeView) {
        _ = refresh(services.keys, services: services, slices: slices, node: node)
    }

    init(services: [String: KubernetesAPI.Service], slices: [String: EndpointSlice], node: NodeView) {
        var index = SliceIndex()
        _ = index.update(slices.keys, from: slices)
        self.init(services: services, slices: index, node: node)
    }

    /// Recomputes the entries of the Services `keys` names (present in `services` or gone from
    /// it); returns what changed.
    mutating func refresh(_ keys: some Sequence<String>, services: [String: KubernetesAPI.Service], slices: SliceIndex,
                          node: NodeView) -> Changes {
        var keys = Set(keys)
        if fileClusterIPs(Array(keys), services: services) { keys.formUnion(claimants) }
        let controlPlane = Self.apiServers(slices: slices).union(node.addressPolicy.controlPlaneAddresses)
        if controlPlane != self.controlPlane {
            self.controlPlane = controlPlane
            keys.formUnion(claimants)
        }
        let clusterIPHolders = self.clusterIPHolders
        let taken = { (address: IPAddress) -> ServiceAddressPolicy.Reason? in
            if clusterIPHolders[address] != nil { return .clusterIP }
            return controlPlane.contains(address) ? .controlPlane : nil
        }
        // Every claim filed before any holder is chosen: the address one Service gives up in this
        // pass may be the one another takes.
        var touched = Set<NodeStore.Service>()
        for key in keys {
            var fresh: [NodeStore.Service: Entry] = [:], unsupported: [String] = [], healthCheck: (port: UInt16, check: HealthCheck)?
            var refused: [ServiceAddressPolicy.Refusal] = []
            let service = services[key]
            if let service, Self.isProxied(service) {
                let serviceSlices = slices.slices(of: key)
                (fresh, unsupported, refused) = Self.entries(of: service, key: key, slices: serviceSlices, node: node, taken: taken)
                healthCheck = Self.healthCheck(of: service, slices: serviceSlices, node: node)
            }
            for claimed in (claimsOf[key] ?? [:]).keys where fresh[claimed] == nil {
                claimersOf[claimed]?.remove(key)
                if claimersOf[claimed]?.isEmpty == true { claimersOf[claimed] = nil }
                touched.insert(claimed)
            }
            for claimed in fresh.keys {
                claimersOf[claimed, default: []].insert(key)
                touched.insert(claimed)
            }
            claimsOf[key] = fresh.isEmpty ? nil : fresh
            createdOf[key] = fresh.isEmpty ? nil : service?.metadata.creationTimestamp ?? Self.unknownCreation
            externalKindsOf[key] = service.map(Self.externalKinds).flatMap { $0.isEmpty ? nil : $0 }
            unsupportedOf[key] = unsupported.isEmpty ? nil : unsupported
            refusedOf[key] = refused.isEmpty ? nil : refused
            healthCheckOf[key] = healthCheck
        }
        var set: [NodeStore.Service: Entry] = [:], deleted: [NodeStore.Service] = []
        for service in touched {
            let entry = holder(of: service).flatMap { claimsOf[$0]?[service] }
            guard entries[service] != entry else { continue }
            entries[service] = entry
            if let entry { set[service] = entry } else { deleted.append(service) }
        }
        return Changes(set: set.sorted { $0.key.description < $1.key.description }.map { ($0.key, $0.value) },
                       delete: deleted.sorted { $0.description < $1.description })
    }

    /// The API servers' addresses the cluster publishes: the endpoints of `default/kubernetes`.
    static func apiServers(slices: SliceIndex) -> Set<IPAddress> {
        Set(slices.slices(of: apiServerService).flatMap { ($0.endpoints ?? []).flatMap(\.addresses) }.compactMap { IPAddress($0) })
    }

    /// The kind of each external address a Service claims; an address that is both its external
    /// IP and its ingress IP counts as the ingress IP, which a controller assigned.
    static func externalKinds(of service: KubernetesAPI.Service) -> [IPAddress: ServiceAddressPolicy.Kind] {
        var kinds: [IPAddress: ServiceAddressPolicy.Kind] = [:]
        for address in (service.spec?.externalIPs ?? []).compactMap({ IPAddress($0) }) { kinds[address] = .externalIP }
        for ingress in service.status?.loadBalancer?.ingress ?? [] where ingress.ipMode != "Proxy" {
            if let address = ingress.ip.flatMap({ IPAddress($0) }) { kinds[address] = .loadBalancerIP }
        }
        return kinds
    }

    /// Files the cluster IPs and the claims of the Services `keys` names; whether a cluster IP came
    /// or went.
    private mutating func fileClusterIPs(_ keys: [String], services: [String: KubernetesAPI.Service]) -> Bool {
        var changed = false
        for key in keys {
            let service = services[key]
            let fresh = service.map(Self.clusterIPs) ?? []
            for address in clusterIPsOf[key] ?? [] {
                clusterIPHolders[address, default: 0] -= 1
                if clusterIPHolders[address] == 0 {
                    clusterIPHolders[address] = nil
                    changed = true
                }
            }
            for address in fresh {
                clusterIPHolders[address, default: 0] += 1
                if clusterIPHolders[address] == 1 { changed = true }
            }
            clusterIPsOf[key] = fresh.isEmpty ? nil : fresh
            let claims = !(service?.spec?.externalIPs ?? []).isEmpty || !(service?.status?.loadBalancer?.ingress ?? []).isEmpty
            if claims { claimants.insert(key) } else { claimants.remove(key) }
        }
        return changed
    }

    /// A Service's cluster IPs (none when headless).
    static func clusterIPs(of service: KubernetesAPI.Service) -> [IPAddress] {
        guard let spec = service.spec else { return [] }
        return Array(Set((spec.clusterIPs ?? spec.clusterIP.map { [$0] } ?? []).compactMap { IPAddress($0) })).sorted()
    }

    /// Headless and ExternalName Services have no address to balance; a Service labelled with a
    /// service-proxy-name belongs to another proxy.
    static func isProxied(_ service: KubernetesAPI.Service) -> Bool {
        guard let spec = service.spec else { return false }
        if spec.type == "ExternalName" || spec.clusterIP == "None" { return false }
        return service.metadata.labels?[serviceProxyNameLabel] == nil
    }

    /// A Service's entries by kube-proxy's rules, the ports it has that are not balanced, and the
    /// external addresses it claims that the node's policy refuses.
    private static func entries(of service: KubernetesAPI.Service, key: String, slices: [EndpointSlice], node: NodeView,
                                taken: (IPAddress) -> ServiceAddressPolicy.Reason?)
        -> ([NodeStore.Service: Entry], [String], [ServiceAddressPolicy.Refusal]) {
        guard let spec = service.spec else { return ([:], [], []) }
        var entries: [NodeStore.Service: Entry] = [:], unsupported: [String] = []
        let clusterIPs = Self.clusterIPs(of: service)
        var (answered, refused) = externalAddresses(of: service, policy: node.addressPolicy, taken: taken)
        // More ranges than the uplinks hold for one address: none of them fits, so nobody is let in.
        let externalIPs = answered.map { address -> (IPAddress, SourceRanges) in
            let ranges = sourceRanges(of: service, family: address.family)
            guard let ranges, ranges.count > maxSourceRanges else { return (address, ranges) }
            refused.append(.init(address: address, kind: externalKinds(of: service)[address] ?? .externalIP, reason: .tooManySourceRanges))
            return (address, [])
        }
        let affinity = spec.sessionAffinity == "ClientIP"
            ? UInt32(clamping: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? Int(defaultAffinitySeconds)) : 0
        // internalTrafficPolicy governs the cluster IPs; traffic to an external address or to a
        // node port from inside the cluster goes to every endpoint, as kube-proxy short-circuits it;
        // externalTrafficPolicy is for traffic from outside, which only those addresses take.
        let localOnly = spec.internalTrafficPolicy == "Local"
        let externalLocal = spec.externalTrafficPolicy == "Local"
        func external(_ port: KubernetesAPI.Service.Port, _ family: IPAddress.Family) -> ExternalTraffic {
            externalLocal ? .local(backends(for: port, family: family, slices: slices, nodeName: node.name)) : .cluster
        }
        for port in spec.ports ?? [] {
            let protocolName = port.protocol ?? "TCP"
            guard let proto = NodeStore.Service.TransportProtocol(rawValue: protocolName.lowercased()),
                  let number = UInt16(exactly: port.port) else {
                unsupported.append("\(key):\(port.port)/\(protocolName)")
                continue
            }
            for address in clusterIPs {
                let backends = backends(for: port, family: address.family, slices: slices, nodeName: localOnly ? node.name : nil)
                entries[NodeStore.Service(address: address, port: number, proto: proto)] = Entry(backends: backends, affinitySeconds: affinity)
            }
            for (address, ranges) in externalIPs {
                let backends = backends(for: port, family: address.family, slices: slices, nodeName: nil)
                entries[NodeStore.Service(address: address, port: number, proto: proto)]
                    = Entry(backends: backends, affinitySeconds: affinity, external: external(port, address.family), sourceRanges: ranges)
            }
            // A node port, on this node's addresses of the Service's families; localhost is the
            // node's own, never reached from outside.
            if let nodePort = port.nodePort.flatMap({ UInt16(exactly: $0) }), nodePort != 0 {
                for address in node.addresses where clusterIPs.contains(where: { $0.family == address.family }) {
                    let backends = backends(for: port, family: address.family, slices: slices, nodeName: nil)
                    entries[NodeStore.Service(address: address, port: nodePort, proto: proto)]
                        = Entry(backends: backends, affinitySeconds: affinity, external: address.isLoopback ? .none : external(port, address.family))
                }
            }
        }
        return (entries, unsupported, refused)
    }

    /// The clients outside the node a LoadBalancer Service admits at its external and ingress IPs
    /// of `family`: its `loadBalancerSourceRanges` of that family; nil when it lists none (every
    /// client, as when one of them is the whole family's), empty when it lists only the other
    /// family's or nothing readable (no client: a restriction is never read as none). Node ports
    /// stay open, as kube-proxy keeps them. A bare address is read as its single-address range.
    static func sourceRanges(of service: KubernetesAPI.Service, family: IPAddress.Family) -> SourceRanges {
        guard let spec = service.spec, spec.type == "LoadBalancer" else { return nil }
        let listed = (spec.loadBalancerSourceRanges ?? []).map { String($0.filter { !$0.isWhitespace }) }.filter { !$0.isEmpty }
        guard !listed.isEmpty else { return nil }
        return effectiveSourceRanges(listed.compactMap { IPPrefix($0) ?? IPAddress($0).map(IPPrefix.host) }, family: family)
    }

    /// The external IPs and LoadBalancer ingress IPs of a Service that the node answers for: those
    /// the policy lets through and that are not `taken` (a Service's cluster IP, an API server's
    /// address), in the order the Service lists
    /// them; the others refused. An ingress
    /// IP in ipMode Proxy is not the node's to answer: the load balancer proxies its traffic and
    /// sends it on to a node port itself, so pods and nodes must reach that address through the
    /// load balancer too (whose source checks and TLS termination, say, they would skip otherwise).
    static func externalAddresses(of service: KubernetesAPI.Service, policy: ServiceAddressPolicy,
                                  taken: (IPAddress) -> ServiceAddressPolicy.Reason?) -> (answered: [IPAddress], refused: [ServiceAddressPolicy.Refusal]) {
        let externalIPs = (service.spec?.externalIPs ?? []).compactMap { IPAddress($0) }.map { ($0, ServiceAddressPolicy.Kind.externalIP) }
        let ingressIPs = (service.status?.loadBalancer?.ingress ?? []).filter { $0.ipMode != "Proxy" }
            .compactMap { $0.ip.flatMap { IPAddress($0) } }.map { ($0, ServiceAddressPolicy.Kind.loadBalancerIP) }
        var answered: [IPAddress] = [], refused: [ServiceAddressPolicy.Refusal] = []
        for (address, kind) in externalIPs + ingressIPs {
            if let reason = policy.refusal(of: address, as: kind) ?? taken(address) {
                refused.append(.init(address: address, kind: kind, reason: reason))
            } else if !answered.contains(address) {
                answered.append(address)
            }
        }
        return (answered, refused)
    }

    /// A Service's health check node port, when it has one (externalTrafficPolicy Local), with the
    /// number of ready endpoints on this node in the family of its first cluster IP.
    private static func healthCheck(of service: KubernetesAPI.Service, slices: [EndpointSlice], node: NodeView) -> (port: UInt16, check: HealthCheck)? {
        guard let spec = service.spec, spec.externalTrafficPolicy == "Local",
              let port = spec.healthCheckNodePort.flatMap({ UInt16(exactly: $0) }), port != 0 else { return nil }
        let primary = (spec.clusterIPs?.first ?? spec.clusterIP).flatMap { IPAddress($0) }?.family ?? .v4
        var local = Set<String>()
        for slice in slices where slice.addressType == (primary == .v4 ? "IPv4" : "IPv6") {
            for endpoint in slice.endpoints ?? [] where endpoint.nodeName == node.name && endpoint.conditions?.ready ?? true {
                if let address = endpoint.addresses.first { local.insert(address) }
            }
        }
        return (port, HealthCheck(namespace: service.metadata.namespace ?? "", name: service.metadata.name, localEndpoints: local.count))
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

    /// What to write to go from `self` to `next`, whatever either was built from (the datapath's
    /// maps read back, say).
    func changes(to next: ServiceTable) -> Changes {
        Changes(set: next.entries.filter { entries[$0.key] != $0.value }.sorted { $0.key.description < $1.key.description }.map { ($0.key, $0.value) },
                delete: entries.keys.filter { next.entries[$0] == nil }.sorted { $0.description < $1.description })
    }
}

/// EndpointSlices by the Service they belong to (their `kubernetes.io/service-name` label), kept up
/// to date one slice at a time.
struct SliceIndex {
    private var byService: [String: [String: EndpointSlice]] = [:]
    /// The Service each slice was filed under.
    private var owner: [String: String] = [:]

    func slices(of service: String) -> [EndpointSlice] { byService[service].map { Array($0.values) } ?? [] }

    /// Files the slices `keys` names as `slices` has them now (gone when absent); returns the
    /// Services whose slices changed.
    mutating func update(_ keys: some Sequence<String>, from slices: [String: EndpointSlice]) -> Set<String> {
        var touched = Set<String>()
        for key in keys {
            if let previous = owner.removeValue(forKey: key) {
                byService[previous]?[key] = nil
                if byService[previous]?.isEmpty == true { byService[previous] = nil }
                touched.insert(previous)
            }
            guard let slice = slices[key], let name = slice.metadata.labels?[EndpointSlice.serviceNameLabel] else { continue }
            let service = (slice.metadata.namespace ?? "") + "/" + name
            byService[service, default: [:]][key] = slice
            owner[key] = service
            touched.insert(service)
        }
        return touched
    }
}
