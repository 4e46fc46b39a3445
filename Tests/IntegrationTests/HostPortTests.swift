// SPDX-License-Identifier: Apache-2.0
import Foundation
import NodeStore
import XCTest

/// hostPort: the runtime passes a pod's `portMappings` (the agent's conflist declares the
/// capability), and the plugin offers each `hostIP:hostPort` on the node, to clients outside the
/// cluster through the uplinks, to the node itself and to pods through the socket hooks.
extension AgentClusterTests {
    private static let mappings: [[String: Any]] = [
        ["hostPort": 8081, "containerPort": 8080, "protocol": "tcp"],
        ["hostPort": 8053, "containerPort": 8080, "protocol": "UDP"],
    ]

    /// Node 1's services that are host ports, "address:port/proto" to their backends.
    private func hostPorts(_ i: Int) throws -> [String: [String]] {
        try listedServices(i).filter { $0.value.hostPortOf != nil }.mapValues(\.backends)
    }

    func testHostPortsFromOutsideFromTheNodeAndFromPods() throws {
        for i in 1...2 { try startAgent(i) }
        try waitFor("nodes 1 and 2 ready") { (1...2).allSatisfy(ready) }
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: conflist(1)))) as? [String: Any])
        let capabilities = (list["plugins"] as? [[String: Any]])?.first?["capabilities"] as? [String: Any]
        XCTAssertEqual(capabilities?["portMappings"] as? Bool, true, "the conflist declares the portMappings capability")

        let node1 = internalIPs(1)
        let mappings = Self.mappings + [["hostPort": 9090, "containerPort": 8080, "protocol": "tcp", "hostIP": node1[0]]]
        let podPath = try nodes[0].makePod("hp")
        let add = try cni(1, "ADD", pod: "hp", netns: podPath, ["runtimeConfig": ["portMappings": mappings]])
        XCTAssertEqual(add.status, 0, add.stdout + add.stderr)
        let added = try add.json()
        let ips = (added["ips"] as? [[String: Any]] ?? []).compactMap { ($0["address"] as? String)?.split(separator: "/").first.map(String.init) }
        let pod: Pod = (podPath, try XCTUnwrap(ips.first { !$0.contains(":") }), try XCTUnwrap(ips.first { $0.contains(":") }))
        let server = try startServer(in: pod.path, "lbserver.py", ["8080", "hp"])
        addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }

        // Every node address of both families (and localhost), TCP and UDP; the named host IP only.
        let offered = try hostPorts(1)
        for address in ["127.0.0.1", "[::1]", node1[0], "[\(node1[1])]"] {
            XCTAssertEqual(offered["\(address):8081/tcp"], ["\(address.hasPrefix("[") ? "[\(pod.v6)]" : pod.v4):8080"], address)
            XCTAssertNotNil(offered["\(address):8053/udp"], address)
        }
        XCTAssertEqual(offered["\(node1[0]):9090/tcp"], ["\(pod.v4):8080"])
        XCTAssertNil(offered["[\(node1[1])]:9090/tcp"], "a host IP names one address")

        // From outside: the pod sees the client's own address.
        let client = internalIPs(3)
        for (family, address) in node1.enumerated() {
            for (proto, port) in [("tcp", 8081), ("udp", 8053)] {
                XCTAssertEqual(try seenFromOutside(proto, address, port, count: 8), ["errors": 0, "hp \(client[family])": 8],
                               "\(proto) \(address):\(port) from outside")
            }
        }
        XCTAssertEqual(try seenFromOutside("tcp", node1[0], 9090, count: 4), ["errors": 0, "hp \(client[0])": 4])
        // From node 1 itself (localhost and its addresses) and from a pod on node 2.
        let other = try addPod(2, "client")
        for (i, netns, address) in [(1, "/run/netns/\(nodes[0].netns)", "127.0.0.1"), (1, "/run/netns/\(nodes[0].netns)", node1[1]),
                                    (2, other.path, node1[0]), (2, other.path, node1[1])] {
            for (proto, port) in [("tcp", "8081"), ("udp", "8053")] {
                XCTAssertEqual(try ask(node: i, in: netns, "peer", proto, address, port)["answer"] as? String, "hp",
                               "\(proto) \(address):\(port) from node \(i)")
            }
        }

        // A second pod asking for a taken host port is refused, leaving nothing behind.
        let veths = try nodes[0].hostVeths()
        let refused = try cni(1, "ADD", pod: "hp2", netns: try nodes[0].makePod("hp2"), ["runtimeConfig": ["portMappings": [Self.mappings[0]]]])
        XCTAssertEqual(refused.status, 1)
        XCTAssertEqual(refused.errorCode, 109, refused.stdout)
        XCTAssertTrue(refused.stdout.contains("\(node1[0]):8081/tcp"), refused.stdout)
        XCTAssertEqual(try nodes[0].hostVeths(), veths)
        XCTAssertEqual(try hostPorts(1), offered)
        // So is one asking for a Service's node port, which the agent keeps programming around the
        // host ports, restarted or not.
        try putNodePortService("np", tcp: 30080, udp: 30053, policy: "Cluster", externalIPs: [], members: [(pod, "node-1")])
        try waitFor("the node port programmed") { try listedServices(1)["\(node1[0]):30080/tcp"] != nil }
        let clash = try cni(1, "ADD", pod: "hp2", netns: "/run/netns/\(nodes[0].prefix)-hp2",
                            ["runtimeConfig": ["portMappings": [["hostPort": 30080, "containerPort": 80]]]])
        XCTAssertEqual(clash.errorCode, 109, clash.stdout)
        XCTAssertTrue(clash.stdout.contains("a service"), clash.stdout)
        stop(agents[1]!)
        try startAgent(1)
        try waitFor("node 1 ready again") { ready(1) }
        usleep(4_500_000)  // two resyncs
        XCTAssertEqual(try hostPorts(1), offered)
        XCTAssertEqual(try seenFromOutside("tcp", node1[0], 8081, count: 4), ["errors": 0, "hp \(client[0])": 4])

        // CHECK finds them, and finds one missing.
        let check = { () throws -> CNIOutcome in
            try self.cni(1, "CHECK", pod: "hp", netns: pod.path, ["runtimeConfig": ["portMappings": mappings], "prevResult": added])
        }
        let clean = try check()
        XCTAssertEqual(clean.status, 0, clean.stdout)
        _ = try runProcess([pluginBinary, "service", "delete", "--root", nodes[0].storeRoot, "\(node1[0]):9090/tcp"])
        let drifted = try check()
        XCTAssertEqual(drifted.errorCode, 105, drifted.stdout)
        XCTAssertTrue(drifted.stdout.contains("9090/tcp is not offered"), drifted.stdout)

        // DEL takes them away; connections to them fail from then on.
        let deleted = try cni(1, "DEL", pod: "hp", netns: pod.path, ["runtimeConfig": ["portMappings": mappings]])
        XCTAssertEqual(deleted.status, 0, deleted.stdout)
        XCTAssertEqual(try hostPorts(1), [:])
        XCTAssertEqual(try seenFromOutside("tcp", node1[0], 8081, count: 2)["errors"] as Int?, 2)

        // GC takes away those of an attachment the runtime no longer lists.
        _ = try addPod(1, "hp3", runtimeConfig: ["portMappings": [Self.mappings[0]]])
        XCTAssertEqual(Set(try hostPorts(1).keys), Set(offered.keys.filter { $0.hasSuffix(":8081/tcp") }))
        let gc = try cni(1, "GC", pod: "", ["cniVersion": "1.1.0", "cni.dev/valid-attachments": [[String: String]]()])
        XCTAssertEqual(gc.status, 0, gc.stdout)
        XCTAssertEqual(try hostPorts(1), [:])
    }

    /// containerd's own code path: its go-cni (Debian's golang-github-containerd-go-cni-dev, the
    /// libcni under it) runs the agent's conflist with the capability arguments containerd's CRI
    /// plugin passes for a pod (go-cni's structs, marshalled with Go's field names) and its
    /// labels. The host ports are offered from the Go spelling; bandwidth and IP ranges, passed
    /// along as containerd passes them, do not disturb the ADD; remove takes the host ports away.
    func testContainerdsGoCNIAddsAndRemovesAPodWithHostPorts() throws {
        let tool = "\(folder)/gocni"
        let source = URL(fileURLWithPath: testScript("")).deletingLastPathComponent().appendingPathComponent("Fixtures/gocni").path
        let built = try runProcess(["sh", "-c", "cd \"$1\" && go build -o \"$2\" .", "sh", source, tool],
                                   environment: ["PATH": "/usr/lib/go/bin:/usr/bin:/bin", "GO111MODULE": "off", "GOPATH": "/usr/share/gocode",
                                                 "GOCACHE": "\(folder)/gocache", "HOME": folder])
        XCTAssertEqual(built.status, 0, "go build (scripts/setup.sh installs golang-go and go-cni): \(built.stderr)")
        try startAgent(1)
        try waitFor("node 1 ready") { ready(1) }
        let podPath = try nodes[0].makePod("gocni")
        let sandbox = "\(nodes[0].prefix)-gocni"
        let gocni = { (verb: String) throws -> (status: Int32, stdout: String, stderr: String) in
            try runProcess(["nsenter", "--net=/run/netns/\(self.nodes[0].netns)", tool, verb, self.confDir(1), self.binDir(1), sandbox, podPath])
        }
        let setup = try gocni("setup")
        XCTAssertEqual(setup.status, 0, setup.stdout + setup.stderr)
        let address = try XCTUnwrap(try nodes[0].endpoints().first { $0.containerID == sandbox }?.addresses)
            .first { !$0.contains(":") }.map { String($0.split(separator: "/")[0]) }
        let pod = try XCTUnwrap(address, "the pod's IPv4 address in the store: \(setup.stdout)")
        XCTAssertTrue(setup.stdout.contains(pod), "go-cni read the result: \(setup.stdout)")
        let offered = try hostPorts(1)
        for node in internalIPs(1).map({ $0.contains(":") ? "[\($0)]" : $0 }) + ["127.0.0.1", "[::1]"] {
            XCTAssertNotNil(offered["\(node):31080/tcp"], "\(node): \(offered)")
            XCTAssertNotNil(offered["\(node):31053/udp"], "\(node): \(offered)")
        }
        XCTAssertEqual(offered["\(internalIPs(1)[0]):31080/tcp"], ["\(pod):8080"])
        let server = try startServer(in: podPath, "lbserver.py", ["8080", "gocni"])
        addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        XCTAssertEqual(try seenFromOutside("tcp", internalIPs(1)[0], 31080, count: 4), ["errors": 0, "gocni \(internalIPs(3)[0])": 4])

        let remove = try gocni("remove")
        XCTAssertEqual(remove.status, 0, remove.stdout + remove.stderr)
        XCTAssertEqual(try hostPorts(1), [:])
        XCTAssertTrue(try nodes[0].endpoints().isEmpty)
    }

    /// What the upstream conformance test asks ("no conflict between pods with same hostPort but
    /// different hostIP and protocol"): three pods share host port 54323, one on 127.0.0.1, two on
    /// the node's address apart by protocol; the node itself reaches each.
    func testHostPortsApartByAddressAndProtocol() throws {
        try startAgent(1)
        try waitFor("node 1 ready") { ready(1) }
        let node1 = internalIPs(1)[0]
        let asks: [(name: String, hostIP: String, proto: String)] = [("p1", "127.0.0.1", "tcp"), ("p2", node1, "tcp"), ("p3", node1, "udp")]
        for ask in asks {
            let pod = try addPod(1, ask.name, runtimeConfig: ["portMappings": [["hostPort": 54323, "containerPort": 8080,
                                                                                 "protocol": ask.proto, "hostIP": ask.hostIP]]])
            let server = try startServer(in: pod.path, "lbserver.py", ["8080", ask.name])
            addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        }
        XCTAssertEqual(Set(try hostPorts(1).keys), ["127.0.0.1:54323/tcp", "\(node1):54323/tcp", "\(node1):54323/udp"])
        for ask in asks {
            let answer = try self.ask(node: 1, in: "/run/netns/\(nodes[0].netns)", "peer", ask.proto, ask.hostIP, "54323")
            XCTAssertEqual(answer["answer"] as? String, ask.name, "\(ask.proto) \(ask.hostIP):54323")
        }
    }
}

/// Where a pod's host port may be (`runtimeConfig.portMappings[].hostIP`): on an address of the
/// node only, loopback kept to the node, and never over a Service, which takes a host port over
/// when it comes later. One node, no agent: the plugin and `swiftpath service` as the agent would.
final class HostPortAddressTests: XCTestCase {
    private var node: TestNode!

    override func setUpWithError() throws { node = try TestNode(self) }

    /// ADD of `name` with `mappings` spliced in as raw JSON, as the runtime wrote it.
    private func add(_ name: String, mappings: String) throws -> (outcome: CNIOutcome, pod: String) {
        let pod = try node.makePod(name)
        var config = String(decoding: try JSONSerialization.data(withJSONObject: node.config()), as: UTF8.self)
        config.removeLast()
        config += #","runtimeConfig":{"portMappings":\#(mappings)}}"#
        return (try node.cni("ADD", containerID: "ctr-\(name)", netns: pod, rawConfig: config), pod)
    }

    /// The node's services, "address:port/proto" to their listing.
    private func services() throws -> [String: ListedService] {
        let listed = try runProcess([pluginBinary, "service", "list", "--root", node.storeRoot, "-o", "json"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        return try ListedService.byKey(listed.stdout)
    }

    /// What a process of the node (in the node's cgroup, where the socket hooks are) gets from `address:port`.
    private func answerOnTheNode(_ address: String, _ port: UInt16) throws -> String? {
        let command = "echo $$ > \(node.cgroup)/cgroup.procs && exec nsenter --net=/run/netns/\(node.netns) python3 "
            + "\(testScript("lbclient.py")) peer tcp \(address) \(port)"
        let result = try runProcess(["sh", "-c", command])
        guard result.status == 0 else { return nil }
        return (try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])?["answer"] as? String
    }

    private func serve(_ pod: String, as name: String) throws {
        let server = try startServer(in: pod, "lbserver.py", ["8080", name])
        addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }
    }

    /// containerd's own bytes (Go field names) with an address that is not the node's: a public
    /// one, a cloud's metadata service, a Service's cluster IP such as the API server's. Each is
    /// refused naming the mapping at fault, and the ADD leaves nothing behind.
    func testHostIPNotOfTheNodeIsRefusedChangingNothing() throws {
        for (index, hostIP) in ["8.8.8.8", "169.254.169.254", "10.96.0.1"].enumerated() {
            let refused = try add("far\(index)", mappings: #"[{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":"192.0.2.1"},"#
                                  + #"{"HostPort":18081,"ContainerPort":80,"Protocol":"tcp","HostIP":"\#(hostIP)"}]"#).outcome
            XCTAssertEqual(refused.errorCode, 7, refused.stdout)
            XCTAssertTrue(refused.errorMessage.contains("\"runtimeConfig.portMappings[1].hostIP\""), refused.errorMessage)
            let details = (try refused.json())["details"] as? String ?? ""
            XCTAssertTrue(details.contains("\(hostIP)") && details.contains("not an address of this node"), details)
        }
        try assertNothingChanged(node)
        if FileManager.default.fileExists(atPath: node.storeRoot) { XCTAssertEqual(try services().count, 0) }
    }

    /// A host port on 127.0.0.1 is the node's own: its processes reach the pod through it, and the
    /// uplinks never answer it (not flagged external), where a node address's host port is.
    func testLoopbackHostPortIsTheNodesOnly() throws {
        let (added, pod) = try add("lo", mappings: #"[{"HostPort":18082,"ContainerPort":8080,"Protocol":"tcp","HostIP":"127.0.0.1"},"#
                                   + #"{"hostPort":18082,"containerPort":8080,"hostIP":"192.0.2.1"}]"#)
        XCTAssertEqual(added.status, 0, added.stdout)
        try serve(pod, as: "lo")
        let offered = try services()
        let loopback = try XCTUnwrap(offered["127.0.0.1:18082/tcp"], "\(offered.keys)")
        XCTAssertNotNil(loopback.hostPortOf)
        XCTAssertNil(loopback.external, "a loopback host port is not answered at the uplinks")
        XCTAssertEqual(offered["192.0.2.1:18082/tcp"]?.external, "cluster")
        XCTAssertEqual(try answerOnTheNode("127.0.0.1", 18082), "lo")
    }

    /// 0.0.0.0 is every IPv4 address of the node and `::` every IPv6 one, not the addresses themselves.
    func testUnspecifiedHostIPIsEveryNodeAddressOfItsFamily() throws {
        let (added, _) = try add("any", mappings: #"[{"hostPort":18083,"containerPort":8080,"hostIP":"0.0.0.0"},"#
                                 + #"{"hostPort":18084,"containerPort":8080,"hostIP":"::"}]"#)
        XCTAssertEqual(added.status, 0, added.stdout)
        let nodeAddresses = try node.exec("ip", "-o", "addr", "show").split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard let at = fields.firstIndex(where: { $0 == "inet" || $0 == "inet6" }), !line.contains("scope link") else { return nil }
            return fields[at + 1].split(separator: "/").first.map(String.init)
        }
        let v4 = nodeAddresses.filter { !$0.contains(":") }, v6 = nodeAddresses.filter { $0.contains(":") }
        XCTAssertTrue(v4.contains("192.0.2.1") && v6.contains("2001:db8::1"), "\(nodeAddresses)")
        let keys = Set(try services().keys)
        XCTAssertEqual(keys.filter { $0.hasSuffix(":18083/tcp") }, Set(v4.map { "\($0):18083/tcp" }))
        XCTAssertEqual(keys.filter { $0.hasSuffix(":18084/tcp") }, Set(v6.map { "[\($0)]:18084/tcp" }))
    }

    /// An address and port a Service holds is refused to a host port (code 109), with or without a
    /// host IP, and the Service stays as it was.
    func testHostPortOnAServiceIsRefused() throws {
        let service = try runProcess([pluginBinary, "service", "set", "--root", node.storeRoot, "192.0.2.1:18085/tcp", "10.9.9.9:80"])
        XCTAssertEqual(service.status, 0, service.stderr)
        for (index, hostIP) in ["", "192.0.2.1"].enumerated() {
            let refused = try add("svc\(index)", mappings: #"[{"HostPort":18085,"ContainerPort":8080,"Protocol":"tcp","HostIP":"\#(hostIP)"}]"#).outcome
            XCTAssertEqual(refused.errorCode, 109, refused.stdout)
            XCTAssertTrue(refused.errorMessage.contains("192.0.2.1:18085/tcp is taken by a service"), refused.errorMessage)
        }
        try assertNothingChanged(node)
        let services = try services()
        XCTAssertEqual(Set(services.keys), ["192.0.2.1:18085/tcp"])
        XCTAssertEqual(services["192.0.2.1:18085/tcp"]?.backends, ["10.9.9.9:80"])
        XCTAssertNil(services["192.0.2.1:18085/tcp"]?.hostPortOf)
    }

    /// A Service applied on a pod's host port takes it over: connections go to the Service's
    /// backends, CHECK says so; the Service deleted, the pod has its host port back; taken over
    /// again, the pod's DEL forgets its host port but leaves the Service.
    func testServiceAppliedLaterTakesTheHostPortOver() throws {
        let mapping = #"[{"hostPort":18086,"containerPort":8080,"hostIP":"192.0.2.1"}]"#
        let (added, pod) = try add("hp", mappings: mapping)
        XCTAssertEqual(added.status, 0, added.stdout)
        try serve(pod, as: "hp")
        let backendPod = try node.makePod("be")
        let backend = try node.add("ctr-be", pod: backendPod).podAddresses[0]
        try serve(backendPod, as: "be")
        XCTAssertEqual(try answerOnTheNode("192.0.2.1", 18086), "hp")

        let key = "192.0.2.1:18086/tcp"
        let desired = "/tmp/\(node.prefix)-services.json"
        try Data(#"[{"service": "\#(key)", "backends": ["\#(backend):8080"], "external": "cluster"}]"#.utf8)
            .write(to: URL(fileURLWithPath: desired))
        defer { unlink(desired) }
        let apply = { () throws -> String in
            let applied = try runProcess([pluginBinary, "service", "apply", "--root", self.node.storeRoot, "-f", desired])
            XCTAssertEqual(applied.status, 0, applied.stderr)
            return applied.stdout
        }
        _ = try apply()
        XCTAssertEqual(try services()[key]?.backends, ["\(backend):8080"])
        XCTAssertNil(try services()[key]?.hostPortOf, "the entry is the Service's now")
        XCTAssertEqual(try answerOnTheNode("192.0.2.1", 18086), "be")
        XCTAssertTrue(try apply().contains("1 service(s) set, 0 deleted"), "applied again, the Service stays")

        // The Service goes: the pod answers on its host port again, as its own.
        let removed = try runProcess([pluginBinary, "service", "delete", key, "--root", node.storeRoot])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertEqual(try services()[key]?.backends, ["\(try added.result().podAddresses[0]):8080"])
        XCTAssertNotNil(try services()[key]?.hostPortOf)
        XCTAssertEqual(try answerOnTheNode("192.0.2.1", 18086), "hp")
        _ = try apply()
        XCTAssertEqual(try answerOnTheNode("192.0.2.1", 18086), "be")

        var config = node.config()
        config["runtimeConfig"] = ["portMappings": [["hostPort": 18086, "containerPort": 8080, "hostIP": "192.0.2.1"]]]
        config["prevResult"] = try added.json()
        let check = try node.cni("CHECK", containerID: "ctr-hp", netns: pod, config: config)
        XCTAssertEqual(check.errorCode, 105, check.stdout)
        XCTAssertTrue(check.errorMessage.contains("taken over by a service"), check.errorMessage)

        let deleted = try node.cni("DEL", containerID: "ctr-hp", netns: pod, config: config)
        XCTAssertEqual(deleted.status, 0, deleted.stdout)
        XCTAssertEqual(try services()[key]?.backends, ["\(backend):8080"], "the pod's DEL left the Service")
        XCTAssertEqual(try answerOnTheNode("192.0.2.1", 18086), "be")
        XCTAssertEqual(try node.store().recordedHostPorts().count, 0, "the pod's host port is forgotten")
        // The Service's own removal removes it.
        try Data("[]".utf8).write(to: URL(fileURLWithPath: desired))
        _ = try apply()
        XCTAssertNil(try services()[key])
    }
}
