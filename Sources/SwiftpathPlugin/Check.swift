// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import Datapath
import IPAM
import NetAddress
import Netlink
import Netns
import SystemCallSupport

extension Plugin {
    /// CHECK: compares what is on the node with what ADD reported (prevResult) and recorded.
    func check(_ node: NodeFacts) throws(CNIError) {
        guard let expected = config.prevResult else {
            throw CNIError(.invalidNetworkConfig, "missing key \"prevResult\" in network config", details: "CHECK needs it")
        }
        let podNamespace = try openPodNamespace()
        let store = try existingStore()
        guard let store, let record = try bpfCall({ () throws(BPFError) in
            try store.record(containerID: attachment.containerID, ifname: attachment.ifname)
        }) else {
            throw CNIError(.unknownContainer, "no swiftpath endpoint for \(attachment.containerID)/\(attachment.ifname)")
        }
        guard record.state == .ready else { throw drift("the ADD of this attachment never completed") }
        let podNetlink = try netlink(in: podNamespace)
        let host = node.host
        try checkPod(podNetlink, record: record, expected: expected)
        try checkHost(host, record: record)
        try checkDatapath(store, record: record)
        try checkHostPorts(try portMappings(), store: store, record: record)
        try addressManager(node.plan, store: store)?.check(for: attachment, expecting: record.addresses.map(\.address))
    }

    private func checkPod(_ netlink: NetlinkSocket, record: EndpointRecord, expected: CNIResult) throws(CNIError) {
        guard let link = try ask({ () throws(SystemCallError) in try netlink.link(named: environment.ifname) }) else {
            throw drift("interface \(environment.ifname) is missing from \(environment.netns)")
        }
        let podIndex = expected.interfaces.firstIndex { $0.name == environment.ifname && $0.sandbox != nil }
        if let podIndex, let mac = expected.interfaces[podIndex].mac, MACAddress(mac) != link.mac {
            throw drift("interface \(environment.ifname) has MAC \(link.mac?.description ?? "none"), prevResult says \(mac)")
        }
        guard link.isUp else { throw drift("interface \(environment.ifname) is down") }

        let present = Set(try ask { () throws(SystemCallError) in try netlink.addresses(index: link.index) }.map(\.address))
        let wanted = expected.ips.filter { $0.interface == nil || $0.interface == podIndex }
        for ip in wanted where !present.contains(ip.address.address) {
            throw drift("address \(ip.address) is missing from \(environment.ifname)")
        }

        let families = Set(wanted.map(\.address.family))
        var routes: [Route] = []
        for family in families.sorted(by: { $0.rawValue < $1.rawValue }) {
            routes += try ask { () throws(SystemCallError) in try netlink.routes(family: family) }
        }
        for route in expected.routes where families.contains(route.dst.family) {
            let found = routes.contains {
                $0.destination.network == route.dst.network && $0.destination.length == route.dst.length
                    && $0.gateway == route.gw && $0.outputIndex == link.index
            }
            if !found { throw drift("route \(route.dst)\(route.gw.map { " via \($0)" } ?? "") is missing in the pod") }
        }

        let neighbours = try ask { () throws(SystemCallError) in try netlink.neighbours(index: link.index) }
        for gateway in Set(wanted.compactMap(\.gateway)) {
            let entry = neighbours.first { $0.address == gateway }
            guard let entry, entry.isPermanent, entry.mac == record.hostMAC else {
                throw drift("the permanent neighbour entry for gateway \(gateway) -> \(record.hostMAC) is missing")
            }
        }
    }

    private func checkHost(_ netlink: NetlinkSocket, record: EndpointRecord) throws(CNIError) {
        guard let link = try ask({ () throws(SystemCallError) in try netlink.link(index: record.hostIndex) }),
              link.name == record.hostName else {
            throw drift("host interface \(record.hostName) is missing")
        }
        guard link.isUp else { throw drift("host interface \(record.hostName) is down") }
        // One FIB lookup per address: a dump would grow with every pod of the node.
        for address in record.addresses {
            let route = try ask { () throws(SystemCallError) in try netlink.route(to: address.address) }
            guard let route, route.destination == address, route.outputIndex == link.index, route.gateway == nil else {
                throw drift("host route \(address) dev \(record.hostName) is missing")
            }
        }
    }

    /// A netlink question whose failure is the kernel's, not drift.
    private func ask<T>(_ body: () throws(SystemCallError) -> T) throws(CNIError) -> T {
        do { return try body() } catch { throw CNIError(netlink: error) }
    }

    /// The pod's program attached to its host end, and its addresses in the endpoint maps.
    private func checkDatapath(_ store: EndpointStore, record: EndpointRecord) throws(CNIError) {
        guard let datapath = Datapath.openExisting(store: store) else { throw drift("the swiftpath datapath is not loaded") }
        let mode = AttachMode(rawValue: record.attachMode) ?? .tcx
        let attached = try bpfCall { () throws(BPFError) in
            try datapath.pods.podAttachment(hostName: record.hostName, hostIndex: record.hostIndex, mode: mode)
        }
        guard attached != nil else { throw drift("the datapath program is not attached (\(mode)) to \(record.hostName)") }
        for address in record.addresses.map(\.address) {
            let entry = try bpfCall { () throws(BPFError) in try datapath.pods.endpoint(address) }
            guard let entry, entry.hostIndex == record.hostIndex, entry.podMAC == record.podMAC else {
                throw drift("the endpoint map entry of \(address) is missing or points elsewhere")
            }
        }
    }

    /// Every mapping the runtime asks for offered on the node by this attachment, to the pod's
    /// container port (and not taken over by a Service since).
    private func checkHostPorts(_ mappings: [PortMapping], store: EndpointStore, record: EndpointRecord) throws(CNIError) {
        guard !mappings.isEmpty else { return }
        let (owned, takenOver) = try bpfCall { () throws(BPFError) -> ([(service: Service, backends: [Backend])], [Service]) in
            var owned: [(service: Service, backends: [Backend])] = [], takenOver: [Service] = []
            for service in try store.hostPorts(ownedBy: record.hostName) {
                if try store.isServiceOverHostPort(service) {
                    takenOver.append(service)
                } else if let recorded = try store.serviceRecord(service) {
                    owned.append((service, recorded.backends))
                }
            }
            return (owned, takenOver)
        }
        let podAddresses = Set(record.addresses.map(\.address))
        for mapping in mappings {
            let asked = { (service: Service) in
                service.port == mapping.hostPort && service.proto == mapping.proto && mapping.hostAddresses.contains(service.address)
            }
            let what = "host port \(mapping.hostAddresses.hostIP.map { "\($0) " } ?? "")\(mapping.hostPort)/\(mapping.proto.rawValue)"
            if let service = takenOver.first(where: asked) { throw drift("\(what) is taken over by a service on \(service)") }
            let offered = owned.filter { asked($0.service) }
            guard !offered.isEmpty else { throw drift("\(what) is not offered") }
            for entry in offered where entry.backends.map({ "\($0.port)" }) != ["\(mapping.containerPort)"]
                || !entry.backends.allSatisfy({ podAddresses.contains($0.address) }) {
                throw drift("\(what) leads to \(entry.backends.map(\.description)), not the pod's port \(mapping.containerPort)")
            }
        }
    }

    private func drift(_ what: String) -> CNIError {
        CNIError(.checkFailed, what, details: "attachment \(attachment.containerID)/\(attachment.ifname)")
    }
}
