// SPDX-License-Identifier: Apache-2.0
/// The parts of the Kubernetes API's objects swiftpath reads, shaped as the API reference shows
/// them (core/v1 Node). Fields swiftpath does not read are not decoded and need not be there.
public struct ObjectMeta: Codable, Sendable, Equatable {
    public var name: String
    public var uid: String?
    public var resourceVersion: String?

    public init(name: String, uid: String? = nil, resourceVersion: String? = nil) {
        self.name = name
        self.uid = uid
        self.resourceVersion = resourceVersion
    }
}

/// An object the API lists and watches by name.
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
}

/// A list answer: its items and the resourceVersion a watch continues from.
public struct ObjectList<Object: KubeObject>: Decodable, Sendable {
    public struct ListMeta: Decodable, Sendable {
        public var resourceVersion: String?
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
