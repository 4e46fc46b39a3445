// SPDX-License-Identifier: Apache-2.0
/// The parts of the Kubernetes API's objects swiftpath reads, shaped as the API reference shows
/// them (core/v1 Node and Service, discovery.k8s.io/v1 EndpointSlice). Fields swiftpath does not
/// read are not decoded and need not be there.
public struct ObjectMeta: Codable, Sendable, Equatable {
    public var name: String
    /// Empty for cluster-scoped objects (Nodes).
    public var namespace: String?
    public var uid: String?
    public var resourceVersion: String?
    public var labels: [String: String]?
    /// RFC 3339 in UTC to the second, as the API server writes it ("2026-12-07T20:00:00Z").
    public var creationTimestamp: String?

    public init(name: String, namespace: String? = nil, uid: String? = nil, resourceVersion: String? = nil, labels: [String: String]? = nil,
                creationTimestamp: String? = nil) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.labels = labels
        self.creationTimestamp = creationTimestamp
    }

    /// What names the object in its collection: `namespace/name`, or `name` when cluster-scoped.
    public var key: String {
        guard let namespace, !namespace.isEmpty else { return name }
        return namespace + "/" + name
    }
}

/// An object the API lists and watches.
public protocol KubeObject: Codable, Sendable, Equatable {
    var metadata: ObjectMeta { get }
}

public struct Node: KubeObject {
    public struct Spec: Codable, Sendable, Equatable {
        public var podCIDR: String?
        public var podCIDRs: [String]?

        public init(podCIDR: String? = nil, podCIDRs: [String]? = nil) {
            self.podCIDR = podCIDR
            self.podCIDRs = podCIDRs
        }
    }

    public struct Address: Codable, Sendable, Equatable {
        /// InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS.
        public var type: String
        public var address: String

        public init(type: String, address: String) {
            self.type = type
            self.address = address
        }
    }

    public struct Status: Codable, Sendable, Equatable {
        public var addresses: [Address]?

        public init(addresses: [Address]? = nil) { self.addresses = addresses }
    }

    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public init(metadata: ObjectMeta, spec: Spec? = nil, status: Status? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    /// The node's pod CIDRs: `spec.podCIDRs` (one per family on a dual-stack cluster), else the
    /// older single `spec.podCIDR`.
    public var podCIDRs: [String] {
        if let list = spec?.podCIDRs, !list.isEmpty { return list }
        return spec?.podCIDR.map { [$0] } ?? []
    }

    /// The node's InternalIP addresses, in the order the node reports them.
    public var internalIPs: [String] {
        (status?.addresses ?? []).filter { $0.type == "InternalIP" }.map(\.address)
    }

    /// The node's InternalIP and ExternalIP addresses (not its hostnames): where it is reached.
    public var ipAddresses: [String] {
        (status?.addresses ?? []).filter { $0.type == "InternalIP" || $0.type == "ExternalIP" }.map(\.address)
    }
}

public struct Service: KubeObject {
    public struct Port: Codable, Sendable, Equatable {
        /// Required when a Service has more than one port; what EndpointSlice ports are matched by.
        public var name: String?
        /// TCP (the default), UDP or SCTP.
        public var `protocol`: String?
        public var port: Int
        public var nodePort: Int?

        public init(name: String? = nil, protocol: String? = nil, port: Int, nodePort: Int? = nil) {
            self.name = name
            self.protocol = `protocol`
            self.port = port
            self.nodePort = nodePort
        }
    }

    public struct SessionAffinityConfig: Codable, Sendable, Equatable {
        public struct ClientIP: Codable, Sendable, Equatable {
            public var timeoutSeconds: Int?
            public init(timeoutSeconds: Int? = nil) { self.timeoutSeconds = timeoutSeconds }
        }
        public var clientIP: ClientIP?
        public init(clientIP: ClientIP? = nil) { self.clientIP = clientIP }
    }

    public struct Spec: Codable, Sendable, Equatable {
        /// ClusterIP (the default), NodePort, LoadBalancer or ExternalName.
        public var type: String?
        /// "None" for a headless Service.
        public var clusterIP: String?
        public var clusterIPs: [String]?
        public var externalIPs: [String]?
        public var ports: [Port]?
        /// None (the default) or ClientIP.
        public var sessionAffinity: String?
        public var sessionAffinityConfig: SessionAffinityConfig?
        /// Cluster (the default) or Local.
        public var internalTrafficPolicy: String?
        public var externalTrafficPolicy: String?
        /// With externalTrafficPolicy Local on a LoadBalancer: where each node tells load balancers
        /// whether it has a local endpoint.
        public var healthCheckNodePort: Int?
        /// On a LoadBalancer: the CIDRs whose clients may reach it from outside (empty: all).
        public var loadBalancerSourceRanges: [String]?

        public init(type: String? = nil, clusterIP: String? = nil, clusterIPs: [String]? = nil, externalIPs: [String]? = nil,
                    ports: [Port]? = nil, sessionAffinity: String? = nil, sessionAffinityConfig: SessionAffinityConfig? = nil,
                    internalTrafficPolicy: String? = nil, externalTrafficPolicy: String? = nil, healthCheckNodePort: Int? = nil,
                    loadBalancerSourceRanges: [String]? = nil) {
            self.type = type
            self.clusterIP = clusterIP
            self.clusterIPs = clusterIPs
            self.externalIPs = externalIPs
            self.ports = ports
            self.sessionAffinity = sessionAffinity
            self.sessionAffinityConfig = sessionAffinityConfig
            self.internalTrafficPolicy = internalTrafficPolicy
            self.externalTrafficPolicy = externalTrafficPolicy
            self.healthCheckNodePort = healthCheckNodePort
            self.loadBalancerSourceRanges = loadBalancerSourceRanges
        }
    }

    public struct Status: Codable, Sendable, Equatable {
        public struct LoadBalancer: Codable, Sendable, Equatable {
            public struct Ingress: Codable, Sendable, Equatable {
                public var ip: String?
                /// "VIP" (the default when absent): traffic reaches the node with the ingress IP as
                /// its destination. "Proxy" (Kubernetes 1.30): the load balancer proxies it and
                /// sends it on to the nodes itself, so the node must not answer for the address.
                public var ipMode: String?

                public init(ip: String? = nil, ipMode: String? = nil) {
                    self.ip = ip
                    self.ipMode = ipMode
                }
            }
            public var ingress: [Ingress]?
            public init(ingress: [Ingress]? = nil) { self.ingress = ingress }
        }
        public var loadBalancer: LoadBalancer?
        public init(loadBalancer: LoadBalancer? = nil) { self.loadBalancer = loadBalancer }
    }

    public var metadata: ObjectMeta
    public var spec: Spec?
    public var status: Status?

    public init(metadata: ObjectMeta, spec: Spec? = nil, status: Status? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }
}

public struct EndpointSlice: KubeObject {
    public struct Conditions: Codable, Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?

        public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
            self.ready = ready
            self.serving = serving
            self.terminating = terminating
        }
    }

    public struct Endpoint: Codable, Sendable, Equatable {
        public var addresses: [String]
        public var conditions: Conditions?
        public var nodeName: String?

        public init(addresses: [String], conditions: Conditions? = nil, nodeName: String? = nil) {
            self.addresses = addresses
            self.conditions = conditions
            self.nodeName = nodeName
        }
    }

    public struct Port: Codable, Sendable, Equatable {
        public var name: String?
        public var `protocol`: String?
        public var port: Int?

        public init(name: String? = nil, protocol: String? = nil, port: Int? = nil) {
            self.name = name
            self.protocol = `protocol`
            self.port = port
        }
    }

    /// The label naming the Service a slice belongs to.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    public var metadata: ObjectMeta
    /// IPv4, IPv6 or FQDN.
    public var addressType: String
    public var endpoints: [Endpoint]?
    public var ports: [Port]?

    public init(metadata: ObjectMeta, addressType: String, endpoints: [Endpoint]? = nil, ports: [Port]? = nil) {
        self.metadata = metadata
        self.addressType = addressType
        self.endpoints = endpoints
        self.ports = ports
    }
}

/// A list answer: its items and the resourceVersion a watch continues from.
public struct ObjectList<Object: KubeObject>: Decodable, Sendable {
    public struct ListMeta: Decodable, Sendable {
        public var resourceVersion: String?
        /// Where the next page starts; absent or empty on the last page.
        public var continueToken: String?

        private enum CodingKeys: String, CodingKey {
            case resourceVersion
            case continueToken = "continue"
        }
    }

    public var metadata: ListMeta
    public var items: [Object]
}

/// The API's Status object: what an ERROR event or a failed request carries.
public struct Status: Codable, Sendable, Equatable {
    public var code: Int?
    public var reason: String?
    public var message: String?
}

/// One event of a watch stream.
public enum WatchEvent<Object: KubeObject>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// Nothing changed; the stream has reached this resourceVersion.
    case bookmark(resourceVersion: String)
    case error(Status)
}
