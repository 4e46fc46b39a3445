// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CNIProtocol
import Datapath
import IPAM
import NetAddress
import PluginConfig
import Netlink
import Netns
import SystemCallSupport
#if canImport(Glibc)
import Glibc
#endif

/// The two ends of a pod's veth, as ADD made them.
struct VethPair {
    let host: Link
    let pod: Link
}

extension Plugin {
    /// ADD: checks its input, records itself as pending, leases addresses, wires the veth and
    /// the datapath, offers the pod's host ports, marks the record ready (and with the agent there,
    /// asks it for the pod's tcx link), and undoes every step already done when a later one fails.
    /// Killed at any point, it leaves a pending record that DEL and GC undo whole.
    func add(_ node: NodeFacts) throws(CNIError) -> CNIResult {
        // Everything that can be wrong with the input is found before anything changes.
        let podNamespace = try openPodNamespace()
        let podNetlink = try netlink(in: podNamespace)
        try ensureInterfaceIsFree(podNetlink)
        let host = node.host
        // The routing table is consulted only when the config leaves the uplinks or the MTU to it.
        let defaultLinks = node.devices == nil || settings.mtu == nil
            ? try defaultRouteLinks(host, attached: NodeDatapath.attachedUplinks(storeRoot: settings.storeRoot)) : []
        let uplinks = node.devices ?? defaultLinks.map { ($0.name, $0.index) }
        let mtu = settings.mtu ?? defaultLinks.first?.mtu ?? 1500
        let socketCgroup = try podCgroup()
        let mappings = try portMappings()
        let nodeAddresses = mappings.isEmpty ? [] : try hostPortAddresses(host)
        try checkHostIPs(mappings, nodeAddresses: nodeAddresses)

        let store = try openStore()
        let ipam = addressManager(node.plan, store: store)!
        let datapath = try prepareDatapath(store: store, uplinks: uplinks, socketCgroup: node.socketCgroup)

        var rollback = Rollback(log: log)
        var pending = try beginRecord(store, source: ipam.source)
        rollback.onFailure("record and claim") { [pending] in
            try store.removeRecord(containerID: attachment.containerID, ifname: attachment.ifname)
            try store.dropClaim(pending.claim.hostName)
        }
        do throws(CNIError) {
            let addressing = try ipam.allocate(for: attachment)
            rollback.onFailure("IPAM lease") { try ipam.release(for: attachment, addresses: addressing.ips.map(\.address.address)) }
            // The record holds what the datapath is told, and GC removes what no record holds: an
            // address past the record's room would be wired, then collected from a live pod.
            guard addressing.ips.count <= EndpointRecord.maxAddresses else {
                throw CNIError(.ipamFailure, "IPAM gave \(addressing.ips.count) addresses; a pod has at most \(EndpointRecord.maxAddresses)",
                               details: addressing.ips.map(\.address.description).joined(separator: " "))
            }
            try pending.record(in: store) { $0.addresses = addressing.ips.map { .host($0.address.address) } }

            let veth = try createVeth(host: host, pod: podNetlink, podNamespace: podNamespace, mtu: mtu, rollback: &rollback)
            try pending.record(in: store) { record in
                (record.hostIndex, record.hostMAC, record.podIndex, record.podMAC, record.mtu) =
                    (veth.host.index, veth.host.mac ?? .zero, veth.pod.index, veth.pod.mac ?? .zero, mtu)
            }

            let gateways = type(of: ipam).gateways(of: addressing)
            let routes = Self.podRoutes(addressing.routes, gateways: gateways)
            try configurePod(podNetlink, veth: veth, addressing: addressing, gateways: gateways, routes: routes)
            try configureHost(host, veth: veth, addressing: addressing)
            // With the agent there, the pod starts on tc and the agent moves it to tcx: ADD skips
            // tcx's grace period (see AgentHandoff.requestPromotion).
            let promoting = settings.attachMode == .auto && store.isAgentPresent()
            let wiring = try attachToDatapath(datapath, store: store, veth: veth, addressing: addressing,
                                              policy: promoting ? .tc : settings.attachMode, socketCgroup: socketCgroup,
                                              rollback: &rollback)
            let hostPorts = try hostPortServices(mappings, podAddresses: addressing.ips.map(\.address.address),
                                             nodeAddresses: nodeAddresses)
            try claimHostPorts(hostPorts, in: datapath, rollback: &rollback)
            try pending.record(in: store) { record in
                (record.attachMode, record.attachID, record.socketCgroupID, record.state) =
                    (wiring.attached.mode.rawValue, wiring.attached.id, wiring.socketCgroupID, .ready)
            }
            try bpfCall { () throws(BPFError) in try store.dropClaim(pending.claim.hostName) }
            if promoting {
                do throws(BPFError) { try datapath.handoff.requestPromotion(hostName: pending.claim.hostName) } catch {
                    log("\(pending.claim.hostName) stays on tc: \(error)")
                }
            }
            log("added \(veth.host.name) <-> \(environment.netns):\(environment.ifname) with \(addressing.ips.map(\.address.description))")
            return result(veth: veth, addressing: addressing, gateways: gateways, routes: routes, mtu: mtu)
        } catch {
            rollback.run()
            throw error
        }
    }

    /// An ADD's record while it runs, and the claim it holds on its host device's name.
    struct PendingRecord {
        private(set) var record: EndpointRecord
        let claim: Claim

        init(record: EndpointRecord, claim: Claim) {
            self.record = record
            self.claim = claim
        }

        /// Writes down how far the ADD got.
        mutating func record(in store: EndpointStore, _ change: (inout EndpointRecord) -> Void) throws(CNIError) {
            change(&record)
            do { try store.update(record) } catch { throw CNIError(bpf: error) }
        }
    }

    /// Under the store's lock: claims the attachment and records it as pending, so that a GC
    /// running meanwhile sees an ADD at work, and a DEL after a crash finds what to undo.
    func beginRecord(_ store: EndpointStore, source: EndpointRecord.AddressSource) throws(CNIError) -> PendingRecord {
        try store.withLockOrFail { () throws(CNIError) -> PendingRecord in
            if let existing = try bpfCall({ () throws(BPFError) in
                try store.record(containerID: attachment.containerID, ifname: attachment.ifname)
            }) {
                if existing.state == .pending, try bpfCall({ () throws(BPFError) in try store.isClaimed(existing.hostName) }) {
                    throw CNIError(.tryAgainLater, "an ADD of \(attachment.containerID)/\(attachment.ifname) is in progress")
                }
                throw CNIError(.interfaceExists, "the store already records \(attachment.containerID)/\(attachment.ifname)",
                               details: existing.state == .pending ? "an earlier ADD of it died half-way; DEL it first" : "DEL it first")
            }
            let claim: Claim
            do throws(BPFError) { claim = try store.claim(hostInterfaceName) } catch where error.errno == .wouldBlock {
                throw CNIError(.tryAgainLater, "an ADD of \(attachment.containerID)/\(attachment.ifname) is in progress")
            } catch {
                throw CNIError(bpf: error)
            }
            let record = EndpointRecord.pending(containerID: attachment.containerID, ifname: attachment.ifname, network: config.name,
                                                netns: environment.netns, hostName: hostInterfaceName, addressSource: source,
                                                created: Self.now())
            _ = try bpfCall { () throws(BPFError) in try store.insert(record) }
            return PendingRecord(record: record, claim: claim)
        }
    }

    static func now() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    func openPodNamespace() throws(CNIError) -> NetworkNamespace {
        guard environment.netns.utf8.count <= EndpointRecord.maxNetnsPathLength else {
            throw CNIError(.invalidEnvironment, "CNI_NETNS is longer than \(EndpointRecord.maxNetnsPathLength) characters")
        }
        let namespace: NetworkNamespace
        do { namespace = try NetworkNamespace.open(environment.netns) } catch {
            throw CNIError(.invalidEnvironment, "CNI_NETNS \"\(environment.netns)\" is not a network namespace",
                           details: error.description)
        }
        // The plugin runs in the node's netns: a pod that is the node would get the pod's routes.
        let isNode: Bool
        do { isNode = try namespace.isCurrent() } catch { throw CNIError(system: error) }
        if isNode {
            throw CNIError(.invalidEnvironment, "CNI_NETNS \"\(environment.netns)\" is the node's own network namespace")
        }
        return namespace
    }

    /// A netlink socket bound to `namespace`: opened there, then used from the host.
    func netlink(in namespace: NetworkNamespace) throws(CNIError) -> NetlinkSocket {
        do { return try namespace.run { () throws(SystemCallError) in try NetlinkSocket() }.get() } catch {
            throw CNIError(netlink: error)
        }
    }

    /// ADD must fail, before changing anything, when the pod already has an interface of that name.
    func ensureInterfaceIsFree(_ podNetlink: NetlinkSocket) throws(CNIError) {
        let existing: Link?
        do { existing = try podNetlink.link(named: environment.ifname) } catch { throw CNIError(netlink: error) }
        if existing != nil {
            throw CNIError(.interfaceExists, "interface \(environment.ifname) already exists in \(environment.netns)")
        }
    }

    /// The devices of the node's default routes, IPv4's first: the uplinks when the config names no
    /// `devices`, and the MTU's source when it names none. Where the kernel's choice for each
    /// family leads to uplinks the datapath already has, two lookups say so, however many routes
    /// the node holds (one per pod); otherwise (the first ADD, a default route that moved, policy
    /// routing, several next hops) the whole table is read for every default route of the main table.
    func defaultRouteLinks(_ netlink: NetlinkSocket, attached: Set<Int32>) throws(CNIError) -> [Link] {
        do {
            if let links = try netlink.offNodeLinks(), links.allSatisfy({ attached.contains($0.index) }) { return links }
            return try netlink.defaultRouteLinks()
        } catch {
            throw CNIError(netlink: error)
        }
    }

    /// Creates the veth pair, joining the rollback as soon as the kernel made it: a failure while
    /// looking its two ends up must not leave it behind.
    func createVeth(host: NetlinkSocket, pod: NetlinkSocket, podNamespace: NetworkNamespace,
                    mtu: Int, rollback: inout Rollback) throws(CNIError) -> VethPair {
        do {
            try host.createVethPair(name: hostInterfaceName, peerName: environment.ifname,
                                    peerNamespace: podNamespace, mtu: mtu)
        } catch where error.errno == .fileExists {
            throw CNIError(.interfaceExists, "host interface \(hostInterfaceName) already exists",
                           details: "an attachment of \(attachment.containerID)/\(attachment.ifname) is already wired; DEL it first")
        } catch {
            throw CNIError(netlink: error)
        }
        rollback.onFailure("veth \(hostInterfaceName)") {
            if let link = try hostEnd(host, of: attachment) { try host.deleteLink(index: link.index) }
        }
        let ends: (Link?, Link?)
        do { ends = (try host.link(named: hostInterfaceName), try pod.link(named: environment.ifname)) } catch {
            throw CNIError(netlink: error)
        }
        guard let hostEnd = ends.0, let podEnd = ends.1 else {
            throw CNIError(.netlinkFailure, "veth \(hostInterfaceName) vanished right after it was created")
        }
        return VethPair(host: hostEnd, pod: podEnd)
    }

    /// Inside the pod: link up, /32 and /128 addresses, a permanent neighbour for each gateway
    /// (so the pod never resolves it), and routes through the gateways.
    func configurePod(_ netlink: NetlinkSocket, veth: VethPair, addressing: CNIResult,
                      gateways: [IPAddress.Family: IPAddress], routes: [CNIResult.Route]) throws(CNIError) {
        guard let hostMAC = veth.host.mac else { throw CNIError(.netlinkFailure, "\(veth.host.name) has no MAC address") }
        do {
            try netlink.setUp(index: veth.pod.index)
            for ip in addressing.ips { try netlink.addAddress(.host(ip.address.address), index: veth.pod.index) }
            for gateway in gateways.values.sorted() {
                try netlink.addPermanentNeighbour(gateway, mac: hostMAC, index: veth.pod.index)
            }
            for route in routes {
                try netlink.addRoute(Route(destination: route.dst, gateway: route.gw, outputIndex: veth.pod.index, onLink: true))
            }
        } catch {
            throw CNIError(netlink: error)
        }
    }

    /// The routes the pod gets: the IPAM's, then a default route for each family it lacks one for.
    static func podRoutes(_ ipamRoutes: [CNIResult.Route], gateways: [IPAddress.Family: IPAddress]) -> [CNIResult.Route] {
        var routes: [CNIResult.Route] = []
        for route in ipamRoutes where gateways[route.dst.family] != nil {
            let normalized = IPPrefix(address: route.dst.network, length: route.dst.length)!
            guard !routes.contains(where: { $0.dst == normalized }) else { continue }
            routes.append(.init(dst: normalized, gw: route.gw ?? gateways[route.dst.family]))
        }
        for (family, gateway) in gateways.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let any = IPPrefix(address: IPAddress(family: family, value: 0), length: 0)!
            if !routes.contains(where: { $0.dst == any }) { routes.append(.init(dst: any, gw: gateway)) }
        }
        return routes
    }

    /// On the host: the forwarding sysctls that let the node route for its pods, the host end up,
    /// and a route and a permanent neighbour entry for each pod address.
    func configureHost(_ netlink: NetlinkSocket, veth: VethPair, addressing: CNIResult) throws(CNIError) {
        guard let podMAC = veth.pod.mac else { throw CNIError(.netlinkFailure, "\(veth.pod.name) has no MAC address") }
        do {
            let families = Set(addressing.ips.map(\.address.family))
            if families.contains(.v4) {
                try Sysctl.ensure("net/ipv4/ip_forward", "1")
                // Behind the datapath's own source check, for what it hands to the stack: a pod's
                // source is routed back through its veth (its host route), or it is forged.
                try Sysctl.ensure("net/ipv4/conf/\(veth.host.name)/rp_filter", "1")
                try Sysctl.ensure("net/ipv4/conf/\(veth.host.name)/accept_redirects", "0")
            }
            if families.contains(.v6) {
                try Sysctl.enableIPv6Forwarding { () throws(SystemCallError) in try routerAdvertisedUplinks(netlink) }
                // The host end's link-local address is usable at once, as the pod's addresses are.
                try Sysctl.ensure("net/ipv6/conf/\(veth.host.name)/accept_dad", "0")
                // A pod is no router of the node's (the datapath drops these too).
                try Sysctl.ensure("net/ipv6/conf/\(veth.host.name)/accept_ra", "0")
                try Sysctl.ensure("net/ipv6/conf/\(veth.host.name)/accept_redirects", "0")
            }
        } catch {
            throw CNIError(system: error)
        }
        do {
            try netlink.setUp(index: veth.host.index)
            for ip in addressing.ips {
                let address = ip.address.address
                try netlink.addRoute(Route(destination: .host(address), outputIndex: veth.host.index))
                try netlink.addPermanentNeighbour(address, mac: podMAC, index: veth.host.index)
            }
        } catch {
            throw CNIError(netlink: error)
        }
    }

    /// The devices whose IPv6 default route came from a router advertisement.
    private func routerAdvertisedUplinks(_ netlink: NetlinkSocket) throws(SystemCallError) -> [String] {
        var devices: [String] = []
        for route in try netlink.routes(family: .v6, madeBy: .routerAdvertisement) where route.destination.length == 0 {
            if let index = route.outputIndex, let link = try netlink.link(index: index) { devices.append(link.name) }
        }
        return devices
    }

    /// The CNI result: the previous plugins' result (when chained) extended with ours.
    func result(veth: VethPair, addressing: CNIResult, gateways: [IPAddress.Family: IPAddress], routes: [CNIResult.Route],
                mtu: Int) -> CNIResult {
        var result = config.prevResult ?? CNIResult()
        let hostIndex = result.interfaces.count
        result.interfaces.append(.init(name: veth.host.name, mac: veth.host.mac?.description))
        result.interfaces.append(.init(name: veth.pod.name, mac: veth.pod.mac?.description, mtu: mtu, sandbox: environment.netns))
        for ip in addressing.ips {
            result.ips.append(.init(address: .host(ip.address.address), gateway: gateways[ip.address.family],
                                    interface: hostIndex + 1))
        }
        result.routes += routes
        if result.dns == CNIResult.DNS() { result.dns = addressing.dns }
        return result
    }
}
