// SPDX-License-Identifier: Apache-2.0
import BPF
import CNIProtocol
import Datapath
import NetAddress
import Netlink
import NodeStore

/// One entry of the runtime's `portMappings` capability: the pod's `containerPort` offered on the
/// node at `hostIP:hostPort` (every node address of the pod's families when `hostIP` is nil).
struct PortMapping: Equatable {
    let hostPort: UInt16
    let containerPort: UInt16
    let proto: Service.TransportProtocol
    let hostIP: IPAddress?
}

extension Plugin {
    /// `runtimeConfig.portMappings`, checked: ports 1 to 65535, TCP or UDP, a host IP that is an
    /// address (or empty), no two entries for the same host address, port and protocol.
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
            guard case .object = entry else { throw bad("hostPort", "expected {\"hostPort\": ..., \"containerPort\": ...}") }
            func port(_ field: String) throws(CNIError) -> UInt16 {
                guard let number = entry[field]?.integerValue, (1...65535).contains(number) else {
                    throw bad(field, "expected an integer in 1...65535")
                }
                return UInt16(number)
            }
            let protocolName = entry["protocol"]?.stringValue?.lowercased() ?? "tcp"
            guard let proto = Service.TransportProtocol(rawValue: protocolName.isEmpty ? "tcp" : protocolName) else {
                throw CNIError(.unsupportedField, "unsupported value for key \"\(at).protocol\" in network config",
                               details: "\"\(protocolName)\": only tcp and udp host ports are offered")
            }
            var hostIP: IPAddress?
            switch entry["hostIP"] {
            case nil, .null?, .string("")?: hostIP = nil
            case .string(let text)?:
                guard let address = IPAddress(text) else { throw bad("hostIP", "\"\(text)\" is not an IP address") }
                hostIP = address
            default: throw bad("hostIP", "expected a string")
            }
            let mapping = PortMapping(hostPort: try port("hostPort"), containerPort: try port("containerPort"), proto: proto, hostIP: hostIP)
            if mappings.contains(where: { $0.hostPort == mapping.hostPort && $0.proto == mapping.proto && $0.hostIP == mapping.hostIP }) {
                throw bad("hostPort", "\(mapping.hostPort)/\(proto.rawValue) is mapped twice")
            }
            mappings.append(mapping)
        }
        return mappings
    }

    /// The services the mappings make, each with the pod's address of its family and the container
    /// port. An empty host IP stands for every address of the node in the pod's families, loopback
    /// included (the socket hooks answer those on the node only), link-local ones excluded.
    func hostPortServices(_ mappings: [PortMapping], podAddresses: [IPAddress], host: NetlinkSocket) throws(CNIError)
        -> [(service: Service, backend: Backend)] {
        guard !mappings.isEmpty else { return [] }
        let podAddress = Dictionary(podAddresses.map { ($0.family, $0) }, uniquingKeysWith: { first, _ in first })
        let nodeAddresses: [IPAddress]
        do { nodeAddresses = try host.addresses().map(\.address).filter { !$0.isLinkLocal } } catch { throw CNIError(netlink: error) }
        var ports: [(service: Service, backend: Backend)] = []
        for (index, mapping) in mappings.enumerated() {
            let hostAddresses = mapping.hostIP.map { [$0] } ?? nodeAddresses.filter { podAddress[$0.family] != nil }
            if let hostIP = mapping.hostIP, podAddress[hostIP.family] == nil {
                throw CNIError(.invalidNetworkConfig, "invalid value for key \"runtimeConfig.portMappings[\(index)].hostIP\" in network config",
                               details: "the pod has no address of \(hostIP)'s family")
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
        rollback.onFailure("host ports") { try datapath.releaseHostPorts(owner: owner) }
        let taken = try bpfCall { () throws(BPFError) in try datapath.claimHostPorts(ports, owner: owner) }
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
            do throws(BPFError) { return try datapath.releaseHostPorts(owner: owner) } catch where error.isRepairable {
                log("host ports of \(owner) left to 'swiftpath datapath load': \(error)")
                return try store.forgetHostPorts(ownedBy: owner)
            }
        }
        if !released.isEmpty { log("released host ports \(released.map(\.description))") }
        return !released.isEmpty
    }
}
