// SPDX-License-Identifier: Apache-2.0
import BPF
import CNIProtocol
import Datapath
import NetAddress
import Netlink
import NodeStore

/// One entry of the runtime's `portMappings` capability: the pod's `containerPort` offered on the
/// node at `hostIP:hostPort`.
struct PortMapping: Equatable {
    /// The node addresses a mapping is offered on.
    enum HostAddresses: Equatable {
        /// No host IP: every node address of the pod's families.
        case every
        /// 0.0.0.0 or `::`: every node address of that family, as a socket bound there would listen.
        case everyOf(IPAddress.Family)
        /// One address of the node (or a loopback one).
        case one(IPAddress)

        func contains(_ address: IPAddress) -> Bool {
            switch self {
            case .every: true
            case .everyOf(let family): address.family == family
            case .one(let hostIP): address == hostIP
            }
        }

        /// The host IP as the runtime gave it, nil when it gave none.
        var hostIP: String? {
            switch self {
            case .every: nil
            case .everyOf(let family): family == .v4 ? "0.0.0.0" : "::"
            case .one(let hostIP): hostIP.description
            }
        }
    }

    let hostPort: UInt16
    let containerPort: UInt16
    let proto: Service.TransportProtocol
    let hostAddresses: HostAddresses
}

extension Plugin {
    /// `runtimeConfig.portMappings`, checked: ports 1 to 65535, TCP or UDP, a host IP that is an
    /// address (or empty), no two entries for the same host address, port and protocol. Keys are
    /// matched as Go's JSON decoding matches them, ignoring case: containerd sends its Go field
    /// names (`HostPort`, `HostIP`), CRI-O and podman `hostPort`, `hostIP`.
    func portMappings() throws(CNIError) -> [PortMapping] {
        let key = "runtimeConfig.portMappings"
        guard let value = config.runtimeConfig?["portMappings"], value != .null else { return [] }
        guard let list = value.arrayValue else {
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"\(key)\" in network config", details: "expected a list")
        }
        var mappings: [PortMapping] = []
        for (index, entry) in list.enumerated() {
            let at = "\(key)[\(index)]"
            func bad(_ field: String, _ details: String) -> CNIError {
                CNIError(.invalidNetworkConfig, "invalid value for key \"\(at).\(field)\" in network config", details: details)
            }
            guard case .object(let fields) = entry else { throw bad("hostPort", "expected {\"hostPort\": ..., \"containerPort\": ...}") }
            func field(_ name: String) -> JSONValue? { Self.goField(name, in: fields) }
            func port(_ name: String) throws(CNIError) -> UInt16 {
                guard let number = field(name)?.integerValue, (1...65535).contains(number) else {
                    throw bad(name, "expected an integer in 1...65535")
                }
                return UInt16(number)
            }
            let protocolName = field("protocol")?.stringValue?.lowercased() ?? "tcp"
            guard let proto = Service.TransportProtocol(rawValue: protocolName.isEmpty ? "tcp" : protocolName) else {
                throw CNIError(.unsupportedField, "unsupported value for key \"\(at).protocol\" in network config",
                               details: "\"\(protocolName)\": only tcp and udp host ports are offered")
            }
            let hostAddresses: PortMapping.HostAddresses
            switch field("hostIP") {
            case nil, .null?, .string("")?: hostAddresses = .every
            case .string(let text)?:
                guard let address = IPAddress(text) else { throw bad("hostIP", "\"\(text)\" is not an IP address") }
                hostAddresses = address.isUnspecified ? .everyOf(address.family) : .one(address)
            default: throw bad("hostIP", "expected a string")
            }
            let mapping = PortMapping(hostPort: try port("hostPort"), containerPort: try port("containerPort"), proto: proto,
                                      hostAddresses: hostAddresses)
            if mappings.contains(where: { $0.hostPort == mapping.hostPort && $0.proto == mapping.proto && $0.hostAddresses == mapping.hostAddresses }) {
                throw bad("hostPort", "\(mapping.hostPort)/\(proto.rawValue) is mapped twice")
            }
            mappings.append(mapping)
        }
        return mappings
    }

    /// The value of `name` in `fields` as Go's JSON decoding finds a struct field's: the exact key,
    /// else a key equal to it but for case (the first such in sorted order, so the choice is stable).
    static func goField(_ name: String, in fields: [String: JSONValue]) -> JSONValue? {
        if let exact = fields[name] { return exact }
        let folded = name.lowercased()
        return fields.keys.sorted().first { $0.lowercased() == folded }.flatMap { fields[$0] }
    }

    /// The node's addresses host ports can be offered on: those of the node's netns, link-local
    /// ones excluded (169.254.169.254 is a cloud's metadata service, not the node).
    func hostPortAddresses(_ host: NetlinkSocket) throws(CNIError) -> [IPAddress] {
        do { return try host.addresses().map(\.address).filter { !$0.isLinkLocal } } catch { throw CNIError(netlink: error) }
    }

    /// Refuses a host IP that is not one of `nodeAddresses` (or loopback, which means the node
    /// itself): the socket hooks answer a host port for every process of the node and every pod,
    /// so a pod naming 8.8.8.8 or the API server's address would capture their connections to it.
    func checkHostIPs(_ mappings: [PortMapping], nodeAddresses: [IPAddress]) throws(CNIError) {
        for (index, mapping) in mappings.enumerated() {
            guard case .one(let address) = mapping.hostAddresses, !address.isLoopback, !nodeAddresses.contains(address) else { continue }
            let why = address.isLinkLocal ? "\(address) is link-local, not an address of this node host ports are offered on"
                : "\(address) is not an address of this node"
            throw CNIError(.invalidNetworkConfig, "invalid value for key \"runtimeConfig.portMappings[\(index)].hostIP\" in network config",
                           details: why)
        }
    }

    /// The services the mappings make, each with the pod's address of its family and the container
    /// port, on `nodeAddresses` (checked by `checkHostIPs`). No host IP stands for every address of
    /// the node in the pod's families, 0.0.0.0 and `::` for every one of theirs, loopback included
    /// (the socket hooks answer those on the node only).
    func hostPortServices(_ mappings: [PortMapping], podAddresses: [IPAddress], nodeAddresses: [IPAddress]) throws(CNIError)
        -> [(service: Service, backend: Backend)] {
        let podAddress = Dictionary(podAddresses.map { ($0.family, $0) }, uniquingKeysWith: { first, _ in first })
        var ports: [(service: Service, backend: Backend)] = []
        for (index, mapping) in mappings.enumerated() {
            let hostAddresses: [IPAddress], family: IPAddress.Family?
            switch mapping.hostAddresses {
            case .every: (hostAddresses, family) = (nodeAddresses.filter { podAddress[$0.family] != nil }, nil)
            case .everyOf(let all): (hostAddresses, family) = (nodeAddresses.filter { $0.family == all }, all)
            case .one(let address): (hostAddresses, family) = ([address], address.family)
            }
            if let family, podAddress[family] == nil {
                throw CNIError(.invalidNetworkConfig, "invalid value for key \"runtimeConfig.portMappings[\(index)].hostIP\" in network config",
                               details: "the pod has no \(family == .v4 ? "IPv4" : "IPv6") address")
            }
            for address in Set(hostAddresses).sorted() {
                let service = Service(address: address, port: mapping.hostPort, proto: mapping.proto)
                guard !ports.contains(where: { $0.service == service }) else { continue }
                ports.append((service, Backend(address: podAddress[address.family]!, port: mapping.containerPort)))
            }
        }
        return ports
    }

    /// Programs the host ports for the attachment, owned by its host device; refused with nothing
    /// changed when another pod or a Service holds one of them.
    func claimHostPorts(_ ports: [(service: Service, backend: Backend)], in datapath: Datapath,
                        rollback: inout Rollback) throws(CNIError) {
        guard !ports.isEmpty else { return }
        let owner = hostInterfaceName
        rollback.onFailure("host ports") { try datapath.services.releaseHostPorts(owner: owner) }
        let taken = try bpfCall { () throws(BPFError) in try datapath.services.claimHostPorts(ports, owner: owner) }
        if let taken {
            throw CNIError(.hostPortTaken, "host port \(taken.service) is taken by \(taken.holder)",
                           details: "runtimeConfig.portMappings asks for it")
        }
    }
}

extension Plugin {
    /// Removes the host ports `owner` holds, from the datapath when there is one, else from the
    /// store's records only (the service maps are refilled from them). Returns whether it had any.
    func releaseHostPorts(of owner: String, store: EndpointStore, datapath: Datapath?) throws(CNIError) -> Bool {
        let released = try bpfCall { () throws(BPFError) -> [Service] in
            guard let datapath else { return try store.forgetHostPorts(ownedBy: owner) }
            do throws(BPFError) { return try datapath.services.releaseHostPorts(owner: owner) } catch where error.isRepairable {
                log("host ports of \(owner) left to 'swiftpath datapath load': \(error)")
                return try store.forgetHostPorts(ownedBy: owner)
            }
        }
        if !released.isEmpty { log("released host ports \(released.map(\.description))") }
        return !released.isEmpty
    }
}
