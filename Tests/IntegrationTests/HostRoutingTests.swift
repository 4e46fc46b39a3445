// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// The BPF host routing on two simulated nodes: pods reach pods on their own node and across the
/// wire, the nodes reach pods and pods the nodes, over IPv4 and IPv6, with ICMP, TCP and UDP.
final class HostRoutingTests: XCTestCase {
    private struct Pods {
        let a: String, b: String, c: String   // a and b on node one, c on node two
        let addresses: [String: [String]]     // netns path -> [IPv4, IPv6]
    }

    private func wire(_ cluster: TwoNodes) throws -> Pods {
        let a = try cluster.one.makePod("a"), b = try cluster.one.makePod("b"), c = try cluster.two.makePod("c")
        var addresses: [String: [String]] = [:]
        addresses[a] = try cluster.one.add("ctr-a", pod: a).podAddresses
        addresses[b] = try cluster.one.add("ctr-b", pod: b).podAddresses
        addresses[c] = try cluster.two.add("ctr-c", pod: c).podAddresses
        for (pod, list) in addresses { XCTAssertEqual(list.count, 2, "\(pod): \(list)") }
        return Pods(a: a, b: b, c: c, addresses: addresses)
    }

    private func assertPodsTalk(_ pods: Pods, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for (from, to, what) in [(pods.a, pods.b, "same node"), (pods.a, pods.c, "across nodes"), (pods.c, pods.b, "across nodes, back")] {
            for address in pods.addresses[to]! {
                let ping = try runProcess(["nsenter", "--net=\(from)", "ping", "-c", "1", "-W", "2", address])
                XCTAssertEqual(ping.status, 0, "\(message): ICMP \(what) to \(address)", file: file, line: line)
                for proto in ["tcp", "udp"] {
                    let answer = try exchange(proto, from: from, to: to, address: address)
                    XCTAssertEqual(answer, "hello through swiftpath", "\(message): \(proto) \(what) to \(address)", file: file, line: line)
                }
            }
        }
    }

    /// The first pod's ADD turns IPv6 forwarding on without costing the node its router
    /// advertisements: the device whose default route came from one (accept_ra 1), which
    /// forwarding would make ignore them until that route expired, is told to keep taking them
    /// (2); another that takes them but routes nothing of the node's (a bridge of containers,
    /// say) is not, nor one that takes none.
    func testForwardingKeepsTheNodesRouterAdvertisements() throws {
        let node = try TestNode(self)
        try node.exec("ip", "link", "add", "ra0", "type", "veth", "peer", "name", "ra1")
        try node.exec("ip", "link", "add", "bridge0", "type", "veth", "peer", "name", "quiet0")
        try node.exec("sysctl", "-qw", "net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.ra0.accept_ra=1", "net.ipv6.conf.bridge0.accept_ra=1",
                      "net.ipv6.conf.quiet0.accept_ra=0")
        for device in ["ra0", "ra1", "bridge0", "quiet0"] { try node.exec("ip", "link", "set", device, "up") }
        try node.exec("ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "ra0", "proto", "ra")
        _ = try node.add("ctr-ra", pod: node.makePod("ra"))
        let setting = { (key: String) in try node.exec("sysctl", "-n", key).filter { !$0.isWhitespace } }
        XCTAssertEqual(try setting("net.ipv6.conf.all.forwarding"), "1")
        XCTAssertEqual(try setting("net.ipv6.conf.ra0.accept_ra"), "2")
        XCTAssertEqual(try setting("net.ipv6.conf.bridge0.accept_ra"), "1", "it routes nothing of the node's")
        XCTAssertEqual(try setting("net.ipv6.conf.quiet0.accept_ra"), "0")
    }

    func testPodsTalkOnOneNodeAndAcrossNodes() throws {
        let cluster = try TwoNodes(self)
        let pods = try wire(cluster)
        try assertPodsTalk(pods, "plain")

        // Pod to node (both nodes' wire addresses) and node to pod, both families.
        for address in ["10.0.0.1", "fd00:ff::1", "10.0.0.2", "fd00:ff::2"] {
            XCTAssertEqual(try cluster.one.inPod(pods.a, "ping", "-c1", "-W2", address).status, 0, "pod a -> node \(address)")
        }
        for address in pods.addresses[pods.a]! {
            XCTAssertEqual(try runProcess(["nsenter", "--net=/run/netns/\(cluster.one.netns)", "ping", "-c1", "-W2", address]).status, 0,
                           "node one -> pod a \(address)")
            XCTAssertEqual(try runProcess(["nsenter", "--net=/run/netns/\(cluster.two.netns)", "ping", "-c1", "-W2", address]).status, 0,
                           "node two -> pod a \(address)")
            XCTAssertEqual(try exchange("tcp", from: "/run/netns/\(cluster.two.netns)", to: pods.a, address: address),
                           "hello through swiftpath", "node two -> pod a over TCP")
        }

        // The counters say which way the packets went.
        let one = try cluster.one.stats(), two = try cluster.two.stats()
        XCTAssertGreaterThan(one.packets(role: "endpoint", path: "redirect_peer"), 0, "same-node traffic went peer to peer")
        XCTAssertGreaterThan(one.packets(role: "endpoint", path: "redirect_fib") + one.packets(role: "endpoint", path: "redirect_neigh"), 0,
                             "cross-node traffic left through the FIB redirect")
        XCTAssertGreaterThan(two.packets(role: "uplink", path: "redirect_peer"), 0, "arrivals for pod c went straight in")
        XCTAssertEqual(one.packets(role: "endpoint", path: "drop_spoofed_source") + one.packets(role: "endpoint", path: "drop_malformed"), 0)
    }

    func testFastPathNeverTouchesTheForwardHook() throws {
        let cluster = try TwoNodes(self)
        let pods = try wire(cluster)
        try cluster.dropForwarding()
        let before = try cluster.one.stats()
        try assertPodsTalk(pods, "with the forward hook dropping everything")
        let after = try cluster.one.stats()
        XCTAssertGreaterThan(after.packets(role: "endpoint", path: "redirect_peer"), before.packets(role: "endpoint", path: "redirect_peer"))
        XCTAssertGreaterThan(after.packets(role: "endpoint", path: "redirect_fib") + after.packets(role: "endpoint", path: "redirect_neigh"),
                             before.packets(role: "endpoint", path: "redirect_fib") + before.packets(role: "endpoint", path: "redirect_neigh"))
    }

    /// The control: the reference ptp plugin forwards through the host stack, so the same drop
    /// rule cuts its pods off. (If this passes, the test above proves nothing.)
    func testReferencePtpIsCutOffByTheForwardHook() throws {
        let cluster = try TwoNodes(self)
        var addresses: [String: String] = [:]
        var pods: [String] = []
        for (node, name, subnet) in [(cluster.one, "pa", "10.31.1.0/24"), (cluster.one, "pb", "10.31.1.0/24"), (cluster.two, "pc", "10.31.2.0/24")] {
            let pod = try node.makePod(name)
            let config: [String: Any] = ["cniVersion": "1.0.0", "name": node.network, "type": "ptp",
                                         "ipam": ["type": "host-local", "dataDir": node.ipamDataDir, "ranges": [[["subnet": subnet]]],
                                                  "routes": [["dst": "0.0.0.0/0"]]]]
            let outcome = try node.cni("ADD", containerID: "ptp-\(name)", netns: pod, config: config, plugin: "\(referencePlugins)/ptp")
            XCTAssertEqual(outcome.status, 0, outcome.stdout)
            addresses[pod] = try XCTUnwrap(outcome.result().podAddresses.first)
            pods.append(pod)
        }
        func ping(_ from: String, _ to: String) throws -> Int32 {
            try runProcess(["nsenter", "--net=\(from)", "ping", "-c", "1", "-W", "1", XCTUnwrap(addresses[to])]).status
        }
        XCTAssertEqual(try ping(pods[0], pods[1]), 0, "ptp same node works without the drop rule")
        XCTAssertEqual(try ping(pods[0], pods[2]), 0, "ptp across nodes works without the drop rule")
        try cluster.dropForwarding()
        XCTAssertNotEqual(try ping(pods[0], pods[1]), 0, "ptp same node goes through the forward hook")
        XCTAssertNotEqual(try ping(pods[0], pods[2]), 0, "ptp across nodes goes through the forward hook")
        // ptp's veths live in the node netns, which teardown deletes with everything in it.
    }

    func testSpoofedPacketsAreDroppedAndCounted() throws {
        let cluster = try TwoNodes(self)
        let pods = try wire(cluster)
        let target = pods.addresses[pods.b]![0]
        XCTAssertEqual(try cluster.one.inPod(pods.a, "ping", "-c1", "-W2", target).status, 0)

        // Another source address than the one IPAM gave.
        XCTAssertEqual(try cluster.one.inPod(pods.a, "ip", "addr", "add", "10.31.1.250/32", "dev", "eth0").status, 0)
        XCTAssertNotEqual(try cluster.one.inPod(pods.a, "ping", "-c2", "-i0.2", "-W1", "-I", "10.31.1.250", target).status, 0)
        XCTAssertGreaterThanOrEqual(try cluster.one.stats().packets(role: "endpoint", path: "drop_spoofed_source"), 2)

        // Its own address, but another MAC.
        XCTAssertEqual(try cluster.one.inPod(pods.a, "ip", "addr", "del", "10.31.1.250/32", "dev", "eth0").status, 0)
        // A MAC change flushes the neighbour table, permanent entries included: put the gateway's back.
        let gatewayEntry = try cluster.one.inPod(pods.a, "ip", "-4", "neigh", "show", "dev", "eth0").stdout
            .split(separator: " ").map(String.init)
        XCTAssertEqual(try cluster.one.inPod(pods.a, "ip", "link", "set", "eth0", "address", "02:00:00:00:be:ef").status, 0)
        XCTAssertEqual(try cluster.one.inPod(pods.a, "ip", "neigh", "replace", gatewayEntry[0], "lladdr", gatewayEntry[2],
                                             "dev", "eth0", "nud", "permanent").status, 0)
        XCTAssertNotEqual(try cluster.one.inPod(pods.a, "ping", "-c2", "-i0.2", "-W1", target).status, 0)
        XCTAssertGreaterThanOrEqual(try cluster.one.stats().packets(role: "endpoint", path: "drop_spoofed_mac"), 2)
        // The victim was never reached: pod b still talks to pod c.
        XCTAssertEqual(try cluster.one.inPod(pods.b, "ping", "-c1", "-W2", pods.addresses[pods.c]![0]).status, 0)
    }

    func testMasqueradeOnlyWhatLeavesTheCluster() throws {
        let cluster = try TwoNodes(self)
        let masquerade: [String: Any] = ["ipMasq": true, "clusterCIDRs": ["10.31.0.0/16", "fd00:31::/32"]]
        let a = try cluster.one.makePod("a"), c = try cluster.two.makePod("c")
        let outcome = try cluster.one.cni("ADD", containerID: "ctr-a", netns: a, config: cluster.one.config(extra: masquerade))
        XCTAssertEqual(outcome.status, 0, outcome.stdout)
        let addressA = try XCTUnwrap(outcome.result().podAddresses.first)
        let addressC = try XCTUnwrap(cluster.two.add("ctr-c", pod: c).podAddresses.first)
        let nodeTwo = "/run/netns/\(cluster.two.netns)"

        // Leaving the cluster (node two's own address): node one's address is the source.
        XCTAssertEqual(try exchange("tcp", from: a, to: nodeTwo, address: "10.0.0.2", askingForPeer: true), "10.0.0.1")
        XCTAssertEqual(try exchange("udp", from: a, to: nodeTwo, address: "10.0.0.2", askingForPeer: true), "10.0.0.1")
        XCTAssertEqual(try exchange("tcp", from: a, to: nodeTwo, address: "fd00:ff::2", askingForPeer: true), "fd00:ff::1")
        XCTAssertGreaterThan(try cluster.one.stats().packets(role: "endpoint", path: "stack_masquerade"), 0)
        // Inside the cluster: the pod's own address, on the fast path.
        XCTAssertEqual(try exchange("tcp", from: a, to: c, address: addressC, askingForPeer: true), addressA)
        XCTAssertTrue(try cluster.one.exec("nft", "list", "table", "inet", "swiftpath").contains("masquerade"))

        // Unloading the datapath removes swiftpath's table.
        let unload = try runProcess(["nsenter", "--net=/run/netns/\(cluster.one.netns)", pluginBinary, "datapath", "unload",
                                     "--root", cluster.one.storeRoot])
        XCTAssertEqual(unload.status, 0, unload.stderr)
        XCTAssertNotEqual(try runProcess(["nsenter", "--net=/run/netns/\(cluster.one.netns)", "nft", "list", "table", "inet",
                                          "swiftpath"]).status, 0)
    }
}

struct Stats {
    let rows: [[String: Any]]

    func packets(role: String, path: String) -> Int {
        rows.filter { $0["role"] as? String == role && $0["path"] as? String == path }.reduce(0) { $0 + ($1["packets"] as? Int ?? 0) }
    }
}

extension TestNode {
    func stats() throws -> Stats {
        let result = try runProcess(["nsenter", "--net=/run/netns/\(netns)", pluginBinary, "stats", "--root", storeRoot, "-o", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return Stats(rows: try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? [])
    }
}
