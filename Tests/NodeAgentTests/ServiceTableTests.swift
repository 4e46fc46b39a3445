// SPDX-License-Identifier: Apache-2.0
import KubernetesAPI
import NetAddress
@testable import NodeAgent
import NodeStore
import XCTest

/// The services the agent derives from Services and EndpointSlices, by kube-proxy's rules.
final class ServiceTableTests: XCTestCase {
    private typealias APIService = KubernetesAPI.Service

    private func service(_ name: String, clusterIPs: [String], ports: [APIService.Port] = [.init(name: "http", port: 80)],
                         labels: [String: String]? = nil, _ change: (inout APIService.Spec) -> Void = { _ in }) -> (String, APIService) {
        var spec = APIService.Spec(clusterIP: clusterIPs.first, clusterIPs: clusterIPs, ports: ports)
        change(&spec)
        return ("default/\(name)", APIService(metadata: ObjectMeta(name: name, namespace: "default", labels: labels), spec: spec))
    }

    private func slice(_ name: String, of service: String, _ family: String, port: Int = 8080, portName: String? = "http", protocol: String? = nil,
                       _ endpoints: [EndpointSlice.Endpoint]) -> (String, EndpointSlice) {
        ("default/\(name)", EndpointSlice(metadata: ObjectMeta(name: name, namespace: "default", labels: [EndpointSlice.serviceNameLabel: service]),
                                          addressType: family, endpoints: endpoints, ports: [.init(name: portName, protocol: `protocol`, port: port)]))
    }

    private func endpoint(_ address: String, ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil, node: String = "a") -> EndpointSlice.Endpoint {
        let conditions = ready == nil && serving == nil && terminating == nil ? nil : EndpointSlice.Conditions(ready: ready, serving: serving, terminating: terminating)
        return .init(addresses: [address], conditions: conditions, nodeName: node)
    }

    private func table(_ services: [(String, APIService)], _ slices: [(String, EndpointSlice)], node: String = "a",
                       policy: ServiceAddressPolicy = .init()) -> ServiceTable {
        var view = ServiceTable.NodeView(name: node)
        view.addressPolicy = policy
        return ServiceTable(services: Dictionary(uniqueKeysWithValues: services), slices: Dictionary(uniqueKeysWithValues: slices), node: view)
    }

    /// The documentation ranges (RFC 5737, 3849) allowed as external IPs.
    private let documentationRanges = ServiceAddressPolicy(externalIPRanges: ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
        .map { IPPrefix($0)! })

    private func entry(_ table: ServiceTable, _ key: String) -> ServiceTable.Entry? { table.entries[NodeStore.Service(key)!] }

    private func backends(_ table: ServiceTable, _ key: String) -> [String]? {
        table.entries[NodeStore.Service(key)!]?.backends.map(\.description)
    }

    func testEveryClusterIPOfBothFamiliesGetsTheEndpointsOfItsFamily() {
        let table = table([service("web", clusterIPs: ["10.96.0.10", "fd00:96::10"]) { $0.externalIPs = ["198.51.100.7"] }],
                          [slice("web-v4", of: "web", "IPv4", [endpoint("10.1.1.5"), endpoint("10.1.2.5", node: "b")]),
                           slice("web-v6", of: "web", "IPv6", [endpoint("fd00:1:1::5")])], policy: documentationRanges)
        XCTAssertEqual(backends(table, "10.96.0.10:80/tcp"), ["10.1.1.5:8080", "10.1.2.5:8080"])
        XCTAssertEqual(backends(table, "[fd00:96::10]:80/tcp"), ["[fd00:1:1::5]:8080"])
        XCTAssertEqual(backends(table, "198.51.100.7:80/tcp"), ["10.1.1.5:8080", "10.1.2.5:8080"], "external IPs are balanced too")
        XCTAssertEqual(table.entries.count, 3)
    }

    /// A node port answers on this node's addresses of the Service's families, with every
    /// endpoint: traffic from the node and its pods is short-circuited, whatever the
    /// externalTrafficPolicy, as kube-proxy does.
    func testNodePortsOnTheNodesAddressesOfTheServicesFamilies() {
        let node = Node(metadata: ObjectMeta(name: "a"), status: .init(addresses: [
            .init(type: "InternalIP", address: "192.0.2.1"), .init(type: "InternalIP", address: "2001:db8::1"),
            .init(type: "ExternalIP", address: "198.51.100.1"), .init(type: "Hostname", address: "a.example"),
        ]))
        let view = ServiceTable.NodeView(node, name: "a")
        XCTAssertEqual(view.addresses.map(\.description).sorted(), ["127.0.0.1", "192.0.2.1", "198.51.100.1", "2001:db8::1", "::1"],
                       "no hostname; localhost of both families")
        let web = service("web", clusterIPs: ["10.96.0.10"], ports: [.init(name: "http", port: 80, nodePort: 30080), .init(name: "plain", port: 81)]) {
            $0.type = "NodePort"
            $0.externalTrafficPolicy = "Local"
        }
        let table = ServiceTable(services: Dictionary(uniqueKeysWithValues: [web]),
                                 slices: Dictionary(uniqueKeysWithValues: [slice("web-v4", of: "web", "IPv4", [endpoint("10.1.1.5"), endpoint("10.1.2.5", node: "b")])]),
                                 node: view)
        XCTAssertEqual(backends(table, "192.0.2.1:30080/tcp"), ["10.1.1.5:8080", "10.1.2.5:8080"])
        XCTAssertEqual(backends(table, "198.51.100.1:30080/tcp"), ["10.1.1.5:8080", "10.1.2.5:8080"])
        XCTAssertEqual(backends(table, "127.0.0.1:30080/tcp"), ["10.1.1.5:8080", "10.1.2.5:8080"])
        XCTAssertNil(backends(table, "[2001:db8::1]:30080/tcp"), "an IPv4-only Service has no node port on IPv6")
        XCTAssertNil(backends(table, "[::1]:30080/tcp"))
        XCTAssertEqual(table.entries.count, 5, "the cluster IP's two ports and the one node port on three addresses")

        // Who reaches them from outside: the node port on the node's addresses, this node's
        // endpoints only (Local); not on localhost, not the cluster IP.
        let localOnly = ExternalTraffic.local([Backend(address: IPAddress("10.1.1.5")!, port: 8080)])
        XCTAssertEqual(entry(table, "192.0.2.1:30080/tcp")?.external, localOnly)
        XCTAssertEqual(entry(table, "198.51.100.1:30080/tcp")?.external, localOnly)
        XCTAssertEqual(entry(table, "127.0.0.1:30080/tcp")?.external, ExternalTraffic.none)
        XCTAssertEqual(entry(table, "10.96.0.10:80/tcp")?.external, ExternalTraffic.none)
    }

    /// externalTrafficPolicy Cluster: node ports, external IPs and LoadBalancer ingress IPs take
    /// outside clients to every endpoint.
    func testExternalAddressesAreAnsweredFromOutside() {
        var lb = service("lb", clusterIPs: ["10.96.0.40"], ports: [.init(name: "http", port: 80, nodePort: 30090)]) {
            $0.type = "LoadBalancer"
            $0.externalIPs = ["203.0.113.9"]
        }
        lb.1.status = .init(loadBalancer: .init(ingress: [.init(ip: "198.51.100.40")]))
        let node = Node(metadata: ObjectMeta(name: "a"), status: .init(addresses: [.init(type: "InternalIP", address: "192.0.2.1")]))
        var view = ServiceTable.NodeView(node, name: "a")
        view.addressPolicy = documentationRanges
        let table = ServiceTable(services: Dictionary(uniqueKeysWithValues: [lb]),
                                 slices: Dictionary(uniqueKeysWithValues: [slice("lb-v4", of: "lb", "IPv4", [endpoint("10.1.2.5", node: "b")])]),
                                 node: view)
        for address in ["192.0.2.1:30090/tcp", "203.0.113.9:80/tcp", "198.51.100.40:80/tcp"] {
            XCTAssertEqual(entry(table, address)?.external, .cluster, address)
            XCTAssertEqual(backends(table, address), ["10.1.2.5:8080"], address)
        }
        XCTAssertEqual(entry(table, "10.96.0.40:80/tcp")?.external, ExternalTraffic.none)
    }

    /// A health check node port for a Service with externalTrafficPolicy Local counts this node's
    /// ready endpoints of the Service's first family; other Services have none.
    func testHealthCheckNodePortsCountTheNodesReadyEndpoints() {
        let local = service("lb", clusterIPs: ["10.96.0.30", "fd00:96::30"]) {
            $0.type = "LoadBalancer"
            $0.externalTrafficPolicy = "Local"
            $0.healthCheckNodePort = 32000
        }
        let cluster = service("other", clusterIPs: ["10.96.0.31"]) { $0.type = "LoadBalancer"; $0.healthCheckNodePort = 32001 }
        let slices = [slice("lb-v4", of: "lb", "IPv4", [endpoint("10.1.1.5"), endpoint("10.1.1.6", ready: false, serving: true, terminating: true),
                                                        endpoint("10.1.2.5", node: "b")]),
                      slice("lb-v6", of: "lb", "IPv6", [endpoint("fd00:1:1::5"), endpoint("fd00:1:1::6")])]
        XCTAssertEqual(table([local, cluster], slices).healthChecks,
                       [32000: .init(namespace: "default", name: "lb", localEndpoints: 1)], "node a: its one ready IPv4 endpoint")
        XCTAssertEqual(table([local], slices, node: "c").healthChecks[32000]?.localEndpoints, 0, "node c has none")
    }

    func testPortsAreMatchedByNameAndProtocol() {
        let ports: [APIService.Port] = [.init(name: "dns", protocol: "UDP", port: 53), .init(name: "dns-tcp", protocol: "TCP", port: 53)]
        let table = table([service("dns", clusterIPs: ["10.96.0.10"], ports: ports)],
                          [slice("dns-1", of: "dns", "IPv4", port: 5353, portName: "dns", protocol: "UDP", [endpoint("10.1.1.9")]),
                           slice("dns-2", of: "dns", "IPv4", port: 5354, portName: "dns-tcp", protocol: "TCP", [endpoint("10.1.1.9")]),
                           slice("dns-3", of: "dns", "IPv4", port: 9999, portName: "dns", protocol: "TCP", [endpoint("10.1.1.8")])])
        XCTAssertEqual(backends(table, "10.96.0.10:53/udp"), ["10.1.1.9:5353"])
        XCTAssertEqual(backends(table, "10.96.0.10:53/tcp"), ["10.1.1.9:5354"], "a port of the same name but another protocol is not it")
    }

    func testReadyEndpointsOnlyAndTerminatingOnesWhenNoneIsReady() {
        let some = table([service("web", clusterIPs: ["10.96.0.10"])],
                         [slice("web-1", of: "web", "IPv4", [endpoint("10.1.1.1"), endpoint("10.1.1.2", ready: false, serving: true, terminating: true),
                                                             endpoint("10.1.1.3", ready: false)])])
        XCTAssertEqual(backends(some, "10.96.0.10:80/tcp"), ["10.1.1.1:8080"], "absent conditions count as ready")
        let none = table([service("web", clusterIPs: ["10.96.0.10"])],
                         [slice("web-1", of: "web", "IPv4", [endpoint("10.1.1.2", ready: false, serving: true, terminating: true),
                                                             endpoint("10.1.1.4", ready: false, serving: false, terminating: true),
                                                             endpoint("10.1.1.3", ready: false)])])
        XCTAssertEqual(backends(none, "10.96.0.10:80/tcp"), ["10.1.1.2:8080"], "serving and terminating, when nothing is ready")
    }

    func testAServiceWithoutEndpointsIsKeptEmptySoThatConnectionsAreRefused() {
        let table = table([service("lonely", clusterIPs: ["10.96.0.11"])], [])
        XCTAssertEqual(backends(table, "10.96.0.11:80/tcp"), [])
    }

    func testHeadlessExternalNameAndOtherProxiesServicesAreLeftAlone() {
        let table = table([service("headless", clusterIPs: ["None"]),
                           service("external", clusterIPs: []) { $0.type = "ExternalName" },
                           service("theirs", clusterIPs: ["10.96.0.12"], labels: [ServiceTable.serviceProxyNameLabel: "other"]),
                           service("ours", clusterIPs: ["10.96.0.13"])],
                          [slice("headless-1", of: "headless", "IPv4", [endpoint("10.1.1.1")])])
        XCTAssertEqual(table.entries.keys.map(\.description), ["10.96.0.13:80/tcp"])
    }

    func testAffinityAndInternalTrafficPolicyLocal() {
        let table = table([service("sticky", clusterIPs: ["10.96.0.20"]) { $0.sessionAffinity = "ClientIP" },
                           service("short", clusterIPs: ["10.96.0.21"]) {
                               $0.sessionAffinity = "ClientIP"
                               $0.sessionAffinityConfig = .init(clientIP: .init(timeoutSeconds: 60))
                           },
                           service("local", clusterIPs: ["10.96.0.22"]) { $0.internalTrafficPolicy = "Local" }],
                          [slice("local-1", of: "local", "IPv4", [endpoint("10.1.1.1", node: "a"), endpoint("10.1.2.1", node: "b")])], node: "a")
        XCTAssertEqual(table.entries[NodeStore.Service("10.96.0.20:80/tcp")!]?.affinitySeconds, 10800)
        XCTAssertEqual(table.entries[NodeStore.Service("10.96.0.21:80/tcp")!]?.affinitySeconds, 60)
        XCTAssertEqual(backends(table, "10.96.0.22:80/tcp"), ["10.1.1.1:8080"], "this node's endpoints only")
    }

    func testSCTPPortsAreNamedNotBalanced() {
        let table = table([service("sig", clusterIPs: ["10.96.0.30"], ports: [.init(name: "s", protocol: "SCTP", port: 9), .init(name: "t", port: 10)])], [])
        XCTAssertEqual(table.unsupported, ["default/sig:9/SCTP"])
        XCTAssertEqual(table.entries.keys.map(\.description), ["10.96.0.30:10/tcp"])
    }

    func testChangesTouchOnlyWhatDiffers() {
        let before = table([service("a", clusterIPs: ["10.96.0.1"]), service("b", clusterIPs: ["10.96.0.2"]), service("c", clusterIPs: ["10.96.0.3"])],
                           [slice("a-1", of: "a", "IPv4", [endpoint("10.1.1.1")]), slice("b-1", of: "b", "IPv4", [endpoint("10.1.1.2")])])
        let after = table([service("a", clusterIPs: ["10.96.0.1"]), service("b", clusterIPs: ["10.96.0.2"])],
                          [slice("a-1", of: "a", "IPv4", [endpoint("10.1.1.1")]), slice("b-1", of: "b", "IPv4", [endpoint("10.1.1.2"), endpoint("10.1.1.3")])])
        let changes = before.changes(to: after)
        XCTAssertEqual(changes.set.map(\.0.description), ["10.96.0.2:80/tcp"])
        XCTAssertEqual(changes.delete.map(\.description), ["10.96.0.3:80/tcp"])
        XCTAssertTrue(after.changes(to: after).set.isEmpty && after.changes(to: after).delete.isEmpty)
    }

    /// One slice or one Service changed: only that Service is recomputed, and only its entries
    /// that differ come out; a slice that moves to another Service touches both.
    func testARefreshRecomputesTheNamedServicesOnly() {
        var services = Dictionary(uniqueKeysWithValues: [service("a", clusterIPs: ["10.96.0.1"]), service("b", clusterIPs: ["10.96.0.2", "fd00:96::2"])])
        var slices = Dictionary(uniqueKeysWithValues: [slice("a-1", of: "a", "IPv4", [endpoint("10.1.1.1")]),
                                                       slice("b-1", of: "b", "IPv4", [endpoint("10.1.1.2")])])
        var index = SliceIndex()
        XCTAssertEqual(index.update(slices.keys, from: slices), ["default/a", "default/b"])
        var table = ServiceTable(services: services, slices: index, node: .init(name: "a"))
        XCTAssertTrue(table.refresh(["default/a", "default/b"], services: services, slices: index, node: .init(name: "a")).isEmpty, "nothing moved")

        slices["default/b-1"] = slice("b-1", of: "b", "IPv4", [endpoint("10.1.1.2"), endpoint("10.1.1.3")]).1
        let touched = index.update(["default/b-1"], from: slices)
        XCTAssertEqual(touched, ["default/b"])
        let grown = table.refresh(touched, services: services, slices: index, node: .init(name: "a"))
        XCTAssertEqual(grown.set.map(\.service.description), ["10.96.0.2:80/tcp"], "b's IPv6 entry has no new endpoint")
        XCTAssertEqual(grown.set.first?.entry.backends.map(\.description), ["10.1.1.2:8080", "10.1.1.3:8080"])
        XCTAssertTrue(grown.delete.isEmpty)

        slices["default/b-1"] = slice("b-1", of: "a", "IPv4", [endpoint("10.1.1.2")]).1
        let moved = index.update(["default/b-1"], from: slices)
        XCTAssertEqual(moved, ["default/a", "default/b"])
        let relabelled = table.refresh(moved, services: services, slices: index, node: .init(name: "a"))
        XCTAssertEqual(relabelled.set.map(\.service.description), ["10.96.0.1:80/tcp", "10.96.0.2:80/tcp"])

        services["default/b"] = nil
        let gone = table.refresh(["default/b"], services: services, slices: index, node: .init(name: "a"))
        XCTAssertEqual(gone.delete.map(\.description), ["10.96.0.2:80/tcp", "[fd00:96::2]:80/tcp"])
        XCTAssertTrue(gone.set.isEmpty)
        XCTAssertEqual(table.entries.keys.map(\.description), ["10.96.0.1:80/tcp"])
        XCTAssertTrue(ServiceTable(services: services, slices: slices, node: .init(name: "a")).changes(to: table).isEmpty,
                      "one change at a time ends where a table built from scratch is")
    }

    // MARK: External addresses a Service may claim (CVE-2020-8554)

    /// A cluster whose nodes are 192.0.2.1 (this one, and 203.0.113.9 outside) and 192.0.2.2, with
    /// pods in 10.244.0.0/16 (node a's 10.244.1.0/24), Services in 10.96.0.0/16, and external
    /// IPs allowed in 203.0.113.0/24 and 2001:db8:1::/48.
    private let cluster = ServiceAddressPolicy(
        externalIPRanges: [IPPrefix("203.0.113.0/24")!, IPPrefix("2001:db8:1::/48")!],
        nodeAddresses: Set(["192.0.2.1", "203.0.113.9", "192.0.2.2"].map { IPAddress($0)! }),
        clusterRanges: ["10.244.0.0/16", "10.244.1.0/24", "10.96.0.0/16"].map { IPPrefix($0)! })

    private func claiming(_ externalIPs: [String], ingress: [APIService.Status.LoadBalancer.Ingress] = []) -> (String, APIService) {
        var claimant = service("claimant", clusterIPs: ["10.96.0.60"]) {
            $0.type = "LoadBalancer"
            $0.externalIPs = externalIPs
        }
        claimant.1.status = .init(loadBalancer: .init(ingress: ingress))
        return claimant
    }

    private func refused(_ table: ServiceTable) -> [String: String] {
        Dictionary(uniqueKeysWithValues: (table.refusals["default/claimant"] ?? []).map { ("\($0.kind.rawValue) \($0.address)", $0.reason.rawValue) })
    }

    /// External IPs only inside the allowed ranges; never a node's address, a pod's or a
    /// Service's range, or an address that means something else (loopback, link-local, multicast,
    /// unspecified, broadcast, reserved, IPv4-mapped); the rest of the Service programmed.
    func testExternalIPsOnlyInsideTheAllowedRangesAndNeverTheClustersOwn() {
        let table = table([claiming(["8.8.8.8", "192.0.2.1", "203.0.113.9", "10.244.1.7", "10.96.0.10", "203.0.113.7", "2001:db8:1::7",
                                     "127.0.0.1", "169.254.169.254", "224.0.0.251", "255.255.255.255", "0.0.0.0", "240.0.0.1",
                                     "::1", "::", "fe80::1", "ff02::1", "::ffff:203.0.113.8", "2001:db8:2::7"])],
                          [slice("claimant-v4", of: "claimant", "IPv4", [endpoint("10.244.1.5")])], policy: cluster)
        XCTAssertEqual(table.entries.keys.map(\.description).sorted(), ["10.96.0.60:80/tcp", "203.0.113.7:80/tcp", "[2001:db8:1::7]:80/tcp"])
        XCTAssertEqual(backends(table, "203.0.113.7:80/tcp"), ["10.244.1.5:8080"], "an allowed external IP keeps today's behaviour")
        XCTAssertEqual(entry(table, "203.0.113.7:80/tcp")?.external, .cluster)
        XCTAssertEqual(refused(table), [
            "externalIP 8.8.8.8": "not_allowed", "externalIP 2001:db8:2::7": "not_allowed",
            "externalIP 192.0.2.1": "node_address", "externalIP 203.0.113.9": "node_address",
            "externalIP 10.244.1.7": "cluster_range", "externalIP 10.96.0.10": "cluster_range",
            "externalIP 127.0.0.1": "special", "externalIP 169.254.169.254": "special", "externalIP 224.0.0.251": "special",
            "externalIP 255.255.255.255": "special", "externalIP 0.0.0.0": "special", "externalIP 240.0.0.1": "special",
            "externalIP ::1": "special", "externalIP ::": "special", "externalIP fe80::1": "special", "externalIP ff02::1": "special",
            "externalIP ::ffff:203.0.113.8": "special",
        ])

        let nothingAllowed = self.table([claiming(["203.0.113.7"])], [], policy: ServiceAddressPolicy())
        XCTAssertEqual(nothingAllowed.entries.keys.map(\.description), ["10.96.0.60:80/tcp"], "no range given: no external IP at all")
        XCTAssertEqual(refused(nothingAllowed), ["externalIP 203.0.113.7": "not_allowed"])
    }

    /// LoadBalancer ingress IPs are not held to the allow-list (the cloud's controller writes
    /// them, not tenants) but to every other refusal; one in ipMode Proxy is the load balancer's
    /// to answer, never the node's.
    func testLoadBalancerIPsRefusedLikeExternalIPsButTheAllowListAndProxyModeLeftToTheBalancer() {
        let table = table([claiming([], ingress: [.init(ip: "198.51.100.40"), .init(ip: "198.51.100.41", ipMode: "Proxy"),
                                                  .init(ip: "198.51.100.42", ipMode: "VIP"), .init(ip: "192.0.2.2"), .init(ip: "10.96.0.50"),
                                                  .init(ip: "127.0.0.2")])],
                          [slice("claimant-v4", of: "claimant", "IPv4", [endpoint("10.244.1.5")])], policy: cluster)
        XCTAssertEqual(table.entries.keys.map(\.description).sorted(), ["10.96.0.60:80/tcp", "198.51.100.40:80/tcp", "198.51.100.42:80/tcp"])
        XCTAssertEqual(entry(table, "198.51.100.40:80/tcp")?.external, .cluster)
        XCTAssertNil(entry(table, "198.51.100.41:80/tcp"), "ipMode Proxy: reached through the load balancer, by pods and nodes too")
        XCTAssertEqual(refused(table), ["loadBalancerIP 192.0.2.2": "node_address", "loadBalancerIP 10.96.0.50": "cluster_range",
                                        "loadBalancerIP 127.0.0.2": "special"], "a Proxy-mode address is not refused: it is not the node's")
    }

    /// loadBalancerSourceRanges hold at a LoadBalancer's external and ingress IPs, by family: an
    /// address of a family the ranges do not name admits nobody; its cluster IP and node ports stay
    /// open, and a Service of another type is not restricted by ranges it cannot have.
    func testSourceRangesLimitTheExternalAddressesOfALoadBalancerOnly() {
        var claimant = service("claimant", clusterIPs: ["10.96.0.60", "fd00:96::60"], ports: [.init(name: "http", port: 80, nodePort: 30080)]) {
            $0.type = "LoadBalancer"
            $0.externalIPs = ["203.0.113.7"]
            $0.loadBalancerSourceRanges = ["198.51.100.0/24", " 192.0.2.77 ", "192.0.2.130/25"]
        }
        claimant.1.status = .init(loadBalancer: .init(ingress: [.init(ip: "203.0.113.8"), .init(ip: "2001:db8:1::8")]))
        var view = ServiceTable.NodeView(name: "a", addresses: [IPAddress("192.0.2.1")!])
        view.addressPolicy = cluster
        let table = ServiceTable(services: Dictionary(uniqueKeysWithValues: [claimant]), slices: [String: EndpointSlice](), node: view)
        let expected = ["192.0.2.77/32", "192.0.2.128/25", "198.51.100.0/24"]
        XCTAssertEqual(entry(table, "203.0.113.7:80/tcp")?.sourceRanges?.map(\.description), expected)
        XCTAssertEqual(entry(table, "203.0.113.8:80/tcp")?.sourceRanges?.map(\.description), expected)
        XCTAssertEqual(entry(table, "[2001:db8:1::8]:80/tcp")?.sourceRanges, [], "IPv4 ranges only: no IPv6 client")
        XCTAssertNotNil(entry(table, "192.0.2.1:30080/tcp"))
        XCTAssertNil(entry(table, "192.0.2.1:30080/tcp")?.sourceRanges, "a node port stays open")
        XCTAssertNil(entry(table, "10.96.0.60:80/tcp")?.sourceRanges, "the cluster IP is for the cluster")

        var nodePort = claimant
        nodePort.1.spec?.type = "NodePort"
        let open = ServiceTable(services: Dictionary(uniqueKeysWithValues: [nodePort]), slices: [String: EndpointSlice](), node: view)
        XCTAssertNotNil(entry(open, "203.0.113.7:80/tcp"))
        XCTAssertNil(entry(open, "203.0.113.7:80/tcp")?.sourceRanges)

        var unreadable = claimant
        unreadable.1.spec?.loadBalancerSourceRanges = ["everyone"]
        XCTAssertEqual(entry(ServiceTable(services: Dictionary(uniqueKeysWithValues: [unreadable]), slices: [String: EndpointSlice](), node: view),
                             "203.0.113.8:80/tcp")?.sourceRanges, [], "a restriction never read as none")

        var everyone = claimant
        everyone.1.spec?.loadBalancerSourceRanges = ["198.51.100.0/24", "0.0.0.0/0"]
        let whole = ServiceTable(services: Dictionary(uniqueKeysWithValues: [everyone]), slices: [String: EndpointSlice](), node: view)
        XCTAssertNil(entry(whole, "203.0.113.8:80/tcp")?.sourceRanges, "0.0.0.0/0: every client")
        XCTAssertEqual(entry(whole, "[2001:db8:1::8]:80/tcp")?.sourceRanges, [], "still none of the other family")

        var many = claimant
        many.1.spec?.loadBalancerSourceRanges = (0..<300).map { "10.\($0 / 256).\($0 % 256).0/24" }
        let crowded = ServiceTable(services: Dictionary(uniqueKeysWithValues: [many]), slices: [String: EndpointSlice](), node: view)
        XCTAssertEqual(entry(crowded, "203.0.113.8:80/tcp")?.sourceRanges, [], "more than the uplinks hold: nobody")
        XCTAssertTrue(crowded.refusals["default/claimant"]?.contains { $0.reason == .tooManySourceRanges } == true)
    }

    /// Two Services asking for one address and port. An external IP outranks no other claim, so
    /// an old Service that names a newer one's external IP later, or names it when that one is
    /// recreated, takes nothing: two external IPs leave the address to nobody (contested) until
    /// one lets go; an ingress IP a controller assigned holds it against any external IP,
    /// whatever the ages; among assigned claims the first created holds it, one of unknown age
    /// last.
    func testNoServiceTakesAnotherOnesAddressByNamingIt() {
        var view = ServiceTable.NodeView(name: "a")
        view.addressPolicy = cluster
        func claimant(_ name: String, _ clusterIP: String, created: String?, externalIPs: [String] = [],
                      ingress: [String] = []) -> (String, APIService) {
            var claimant = service(name, clusterIPs: [clusterIP]) {
                $0.type = "LoadBalancer"
                $0.externalIPs = externalIPs
            }
            claimant.1.metadata.creationTimestamp = created
            claimant.1.status = .init(loadBalancer: .init(ingress: ingress.map { .init(ip: $0) }))
            return claimant
        }
        let slices = [slice("victim-v4", of: "victim", "IPv4", [endpoint("10.244.1.5")]),
                      slice("squatter-v4", of: "aaa-squatter", "IPv4", [endpoint("10.244.9.9")])]
        var index = SliceIndex()
        _ = index.update(slices.map(\.0), from: Dictionary(uniqueKeysWithValues: slices))
        let victim = claimant("victim", "10.96.0.60", created: "2026-06-01T10:00:00Z", externalIPs: ["203.0.113.7"])
        let squatter = claimant("aaa-squatter", "10.96.0.61", created: "2026-01-05T10:00:00Z", externalIPs: ["203.0.113.7"])

        // The older squatter names the victim's external IP later: the victim's entry goes, to nobody.
        var table = ServiceTable(services: Dictionary(uniqueKeysWithValues: [victim]), slices: index, node: view)
        XCTAssertEqual(backends(table, "203.0.113.7:80/tcp"), ["10.244.1.5:8080"])
        let both = Dictionary(uniqueKeysWithValues: [victim, squatter])
        let changes = table.refresh(["default/aaa-squatter"], services: both, slices: index, node: view)
        XCTAssertEqual(changes.set.map(\.service.description), ["10.96.0.61:80/tcp"], "its own cluster IP only")
        XCTAssertEqual(changes.delete.map(\.description), ["203.0.113.7:80/tcp"])
        XCTAssertEqual(table.refusals["default/aaa-squatter"]?.map(\.description), ["externalIP 203.0.113.7: contested"])
        XCTAssertEqual(table.refusals["default/victim"]?.map(\.description), ["externalIP 203.0.113.7: contested"])
        XCTAssertNil(ServiceTable(services: both, slices: index, node: view).entries[NodeStore.Service("203.0.113.7:80/tcp")!],
                     "the same from scratch")
        // The squatter lets go: the victim has it back.
        let handover = table.refresh(["default/aaa-squatter"], services: Dictionary(uniqueKeysWithValues: [victim]), slices: index, node: view)
        XCTAssertEqual(handover.set.map(\.service.description), ["203.0.113.7:80/tcp"])
        XCTAssertEqual(backends(table, "203.0.113.7:80/tcp"), ["10.244.1.5:8080"])
        XCTAssertTrue(table.refusals.isEmpty)

        // An ingress IP a controller assigned holds against an older Service's external IP.
        let balanced = claimant("victim", "10.96.0.60", created: "2026-06-01T10:00:00Z", ingress: ["203.0.113.7"])
        table = ServiceTable(services: Dictionary(uniqueKeysWithValues: [balanced, squatter]), slices: index, node: view)
        XCTAssertEqual(backends(table, "203.0.113.7:80/tcp"), ["10.244.1.5:8080"])
        XCTAssertEqual(table.refusals["default/aaa-squatter"]?.map(\.description), ["externalIP 203.0.113.7: taken"])

        // Two ingress IPs (a controller's mistake): the first created; one of unknown age last.
        let ageless = claimant("aaa-squatter", "10.96.0.61", created: nil, ingress: ["203.0.113.7"])
        table = ServiceTable(services: Dictionary(uniqueKeysWithValues: [balanced, ageless]), slices: index, node: view)
        XCTAssertEqual(backends(table, "203.0.113.7:80/tcp"), ["10.244.1.5:8080"])
        XCTAssertEqual(table.refusals["default/aaa-squatter"]?.map(\.description), ["loadBalancerIP 203.0.113.7: taken"])
    }

    /// The API servers' addresses (the endpoints of default/kubernetes, the address the agent was
    /// given) are never an external address, even inside the allowed ranges; when the API server
    /// moves, the claims are judged again.
    func testTheAPIServersAddressesAreNeverExternal() {
        var view = ServiceTable.NodeView(name: "a")
        view.addressPolicy = cluster
        view.addressPolicy.controlPlaneAddresses = [IPAddress("203.0.113.20")!]
        let services = Dictionary(uniqueKeysWithValues: [claiming(["203.0.113.10", "203.0.113.20", "203.0.113.30"])])
        var slices = Dictionary(uniqueKeysWithValues: [slice("kubernetes", of: "kubernetes", "IPv4", port: 6443, portName: "https",
                                                             [endpoint("203.0.113.10")])])
        var index = SliceIndex()
        _ = index.update(slices.keys, from: slices)
        var table = ServiceTable(services: services, slices: index, node: view)
        XCTAssertEqual(refused(table), ["externalIP 203.0.113.10": "control_plane", "externalIP 203.0.113.20": "control_plane"])
        XCTAssertNotNil(entry(table, "203.0.113.30:80/tcp"))
        XCTAssertNil(entry(table, "203.0.113.10:80/tcp"))

        slices = Dictionary(uniqueKeysWithValues: [slice("kubernetes", of: "kubernetes", "IPv4", port: 6443, portName: "https",
                                                         [endpoint("203.0.113.30")])])
        let touched = index.update(slices.keys, from: slices)
        let changes = table.refresh(touched, services: services, slices: index, node: view)
        XCTAssertEqual(changes.set.map(\.service.description), ["203.0.113.10:80/tcp"])
        XCTAssertEqual(changes.delete.map(\.description), ["203.0.113.30:80/tcp"])
        XCTAssertEqual(refused(table), ["externalIP 203.0.113.30": "control_plane", "externalIP 203.0.113.20": "control_plane"])
    }

    /// What is refused follows the Service: a refresh that drops the claim drops the refusal, and
    /// a deleted Service takes its refusals with it.
    func testRefusalsFollowTheService() {
        var table = table([claiming(["8.8.8.8", "203.0.113.7"])], [], policy: cluster)
        XCTAssertEqual(refused(table), ["externalIP 8.8.8.8": "not_allowed"])
        var view = ServiceTable.NodeView(name: "a")
        view.addressPolicy = cluster
        let fixed = Dictionary(uniqueKeysWithValues: [claiming(["203.0.113.7"])])
        let changes = table.refresh(["default/claimant"], services: fixed, slices: SliceIndex(), node: view)
        XCTAssertTrue(changes.isEmpty, "the programmed entries did not change")
        XCTAssertNil(table.refusals["default/claimant"])
        _ = table.refresh(["default/claimant"], services: Dictionary(uniqueKeysWithValues: [claiming(["1.1.1.1"])]), slices: SliceIndex(), node: view)
        XCTAssertEqual(refused(table), ["externalIP 1.1.1.1": "not_allowed"])
        _ = table.refresh(["default/claimant"], services: [:], slices: SliceIndex(), node: view)
        XCTAssertTrue(table.refusals.isEmpty)
    }

    /// Without the service CIDRs configured (or with an allow-list that covers them), a claim on
    /// another Service's cluster IP is still refused: its entry would replace that Service's. A
    /// cluster IP that comes or goes later is found on the claims already there.
    func testAnotherServicesClusterIPIsNeverAnExternalAddress() {
        let careless = ServiceAddressPolicy(externalIPRanges: [IPPrefix("10.96.0.0/16")!])
        var view = ServiceTable.NodeView(name: "a")
        view.addressPolicy = careless
        let dns = service("dns", clusterIPs: ["10.96.0.10"])
        var services = Dictionary(uniqueKeysWithValues: [dns, claiming(["10.96.0.10", "10.96.7.7"])])
        var slices = SliceIndex()
        let sliceObjects = Dictionary(uniqueKeysWithValues: [slice("dns-v4", of: "dns", "IPv4", [endpoint("10.244.1.53")]),
                                                             slice("claimant-v4", of: "claimant", "IPv4", [endpoint("10.244.1.5")]),
                                                             slice("late-v4", of: "late", "IPv4", [endpoint("10.244.1.77")])])
        _ = slices.update(sliceObjects.keys, from: sliceObjects)
        var table = ServiceTable(services: services, slices: slices, node: view)
        XCTAssertEqual(backends(table, "10.96.0.10:80/tcp"), ["10.244.1.53:8080"], "the Service keeps its cluster IP")
        XCTAssertEqual(entry(table, "10.96.0.10:80/tcp")?.external, ExternalTraffic.none)
        XCTAssertEqual(backends(table, "10.96.7.7:80/tcp"), ["10.244.1.5:8080"])
        XCTAssertEqual(refused(table), ["externalIP 10.96.0.10": "cluster_ip"])

        let late = service("late", clusterIPs: ["10.96.7.7"])
        services[late.0] = late.1
        let taken = table.refresh([late.0], services: services, slices: slices, node: view)
        XCTAssertEqual(taken.set.map(\.service.description), ["10.96.7.7:80/tcp"])
        XCTAssertEqual(taken.delete, [], "written over, not deleted")
        XCTAssertEqual(backends(table, "10.96.7.7:80/tcp"), ["10.244.1.77:8080"], "the new cluster IP is its Service's")
        XCTAssertEqual(refused(table), ["externalIP 10.96.0.10": "cluster_ip", "externalIP 10.96.7.7": "cluster_ip"])

        services[late.0] = nil
        let given = table.refresh([late.0], services: services, slices: slices, node: view)
        XCTAssertEqual(given.set.map(\.service.description), ["10.96.7.7:80/tcp"])
        XCTAssertEqual(backends(table, "10.96.7.7:80/tcp"), ["10.244.1.5:8080"], "the claim holds again once the cluster IP is gone")
        XCTAssertEqual(entry(table, "10.96.7.7:80/tcp")?.external, .cluster)
        XCTAssertEqual(refused(table), ["externalIP 10.96.0.10": "cluster_ip"])
    }

    /// Cluster IPs that go, in one pass, while claims on them hold again: each address ends with
    /// its claim's entry, whatever order the Services are recomputed in (eight pairs, so that an
    /// order-dependent table would lose some).
    func testClusterIPsGivenUpAndClaimedInOnePass() {
        var view = ServiceTable.NodeView(name: "a")
        view.addressPolicy = ServiceAddressPolicy(externalIPRanges: [IPPrefix("10.96.0.0/16")!])
        var services: [String: APIService] = [:]
        for i in 1...8 {
            let holder = service("holder\(i)", clusterIPs: ["10.96.8.\(i)"])
            let claim = service("claim\(i)", clusterIPs: ["10.96.9.\(i)"]) { $0.externalIPs = ["10.96.8.\(i)"] }
            services[holder.0] = holder.1
            services[claim.0] = claim.1
        }
        var table = ServiceTable(services: services, slices: SliceIndex(), node: view)
        XCTAssertEqual(table.refusals.count, 8, "every claim refused while its address is a cluster IP")
        let holders = (1...8).map { "default/holder\($0)" }
        for key in holders { services[key] = nil }
        let changes = table.refresh(holders, services: services, slices: SliceIndex(), node: view)
        XCTAssertEqual(changes.delete, [])
        XCTAssertEqual(changes.set.count, 8)
        for i in 1...8 {
            XCTAssertEqual(entry(table, "10.96.8.\(i):80/tcp")?.external, .cluster, "claim \(i) holds its address")
        }
        XCTAssertTrue(table.refusals.isEmpty)
    }
}
