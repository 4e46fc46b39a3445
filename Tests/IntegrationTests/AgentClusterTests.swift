// SPDX-License-Identifier: Apache-2.0
import Datapath
import Foundation
import KubeStandIn
import NodeStore
import XCTest

/// Three nodes (netns on one bridge) and the API stand-in beside them, one swiftpath-agent per
/// node: the agents install the plugin and write each node's conflist from its Node object, and
/// route between the nodes' pods; pods added through CNI with what the agents installed talk
/// across nodes over IPv4 and IPv6. With an agent killed, pods still start, stop and talk; a
/// restarted agent rewrites nothing that did not change.
final class AgentClusterTests: XCTestCase {
    var nodes: [TestNode] = []
    var agents: [Int: Process] = [:]
    var standIn: KubeStandIn!
    var folder = ""
    private var switchNetns = ""

    private let agentBinary = URL(fileURLWithPath: pluginBinary).deletingLastPathComponent().appendingPathComponent("swiftpath-agent").path
    func podCIDRs(_ i: Int) -> [String] { ["10.31.\(i).0/24", "fd00:31:\(i)::/64"] }
    func internalIPs(_ i: Int) -> [String] { ["10.0.0.\(i)", "fd00:ff::\(i)"] }
    func binDir(_ i: Int) -> String { "\(folder)/bin\(i)" }
    func confDir(_ i: Int) -> String { "\(folder)/conf\(i)" }
    func conflist(_ i: Int) -> String { confDir(i) + "/10-swiftpath.conflist" }

    override func setUpWithError() throws {
        nodes = try (1...3).map { _ in try TestNode(self) }
        folder = "/tmp/\(nodes[0].prefix)-agents"
        switchNetns = "\(nodes[0].prefix)-switch"
        addTeardownBlock { [self] in
            for agent in agents.values { stop(agent) }
            standIn?.stop()
            _ = try? runProcess(["ip", "netns", "del", switchNetns])
            try? FileManager.default.removeItem(atPath: folder)
        }
        try shell("ip", "netns", "add", switchNetns)
        let inSwitch = { (argv: [String]) throws in _ = try shell(["ip", "-n", self.switchNetns] + argv) }
        try inSwitch(["link", "set", "lo", "up"])
        try inSwitch(["link", "add", "br0", "type", "bridge"])
        try inSwitch(["link", "set", "br0", "up"])
        try inSwitch(["addr", "add", "10.0.0.254/24", "dev", "br0"])
        try inSwitch(["addr", "add", "fd00:ff::fe/64", "dev", "br0", "nodad"])
        for (index, node) in nodes.enumerated() {
            let i = index + 1
            node.devices = ["wire\(i)"]
            node.podRanges = (podCIDRs(i)[0], podCIDRs(i)[1])
            _ = try shell("ip", "-n", node.netns, "link", "add", "wire\(i)", "type", "veth", "peer", "name", "port\(i)", "netns", switchNetns)
            try inSwitch(["link", "set", "port\(i)", "master", "br0", "up"])
            try node.exec("ip", "addr", "add", internalIPs(i)[0] + "/24", "dev", "wire\(i)")
            try node.exec("ip", "addr", "add", internalIPs(i)[1] + "/64", "dev", "wire\(i)", "nodad")
            try node.exec("ip", "link", "set", "wire\(i)", "up")
            try FileManager.default.createDirectory(atPath: binDir(i), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: confDir(i), withIntermediateDirectories: true)
        }
        standIn = try KubeStandIn(host: "10.0.0.254", netns: switchNetns)
        for i in 1...3 { try standIn.putNode("node-\(i)", podCIDRs: podCIDRs(i), internalIPs: internalIPs(i)) }
    }

    /// Starts node `i`'s agent; with `softOpenFileLimit`, under that soft RLIMIT_NOFILE (the
    /// hard one kept), as a container runtime might start it.
    /// `withoutCgroup2`: in a mount namespace of its own where no cgroup2 is mounted, and given no
    /// --cgroup-root (the agent is started only once no cgroup2 mount is left in sight, so it can
    /// never find the host's root cgroup).
    func startAgent(_ i: Int, _ extraArguments: [String] = [], softOpenFileLimit: Int? = nil, withoutCgroup2: Bool = false) throws {
        let node = nodes[i - 1]
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        let hidingCgroup2 = ["unshare", "-m", "--propagation", "private", "sh", "-ec",
                             #"for m in $(awk '$3 == "cgroup2" { print $2 }' /proc/self/mounts); do umount -l "$m"; done; "#
                             + #"if grep -q ' cgroup2 ' /proc/self/mounts; then exit 97; fi; exec "$0" "$@""#]
        agent.arguments = ["--net=/run/netns/\(node.netns)"] + (softOpenFileLimit.map { ["prlimit", "--nofile=\($0):"] } ?? [])
            + (withoutCgroup2 ? hidingCgroup2 : []) + [
                           agentBinary, "run", "--kubeconfig", try standIn.kubeconfig(),
                           "--node-name", "node-\(i)", "--cni-bin-dir", binDir(i), "--cni-conf-dir", confDir(i),
                           "--plugin-binary", pluginBinary, "--store-root", node.storeRoot, "--device", "wire\(i)",
                           // kube-controller-manager's dual-stack spelling.
                           "--cluster-cidr", "10.31.0.0/16,fd00:31::/32",
                           "--plugin-log-file", "\(folder)/plugin\(i).log", "--resync-seconds", "2"]
            + (withoutCgroup2 ? [] : ["--cgroup-root", node.cgroup]) + extraArguments
        // The manifest's api-server key left empty: the kubeconfig's server stands.
        agent.environment = ProcessInfo.processInfo.environment.merging(["SWIFTPATH_API_SERVER": ""]) { $1 }
        let log = FileManager.default.createFile(atPath: "\(folder)/agent\(i).log", contents: nil)
        XCTAssertTrue(log)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(folder)/agent\(i).log"))
        handle.seekToEndOfFile()
        agent.standardError = handle
        agent.standardOutput = handle
        try agent.run()
        agents[i] = agent
    }

    func stop(_ agent: Process) {
        if agent.isRunning {
            kill(agent.processIdentifier, SIGKILL)
            agent.waitUntilExit()
        }
    }

    func waitFor(_ what: String, seconds: Double = 60, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return }
            usleep(200_000)
        }
        let logs = (1...3).map { (try? String(contentsOfFile: "\(folder)/agent\($0).log", encoding: .utf8)) ?? "" }
        XCTFail("\(what) not within \(Int(seconds)) s; agent logs:\n\(logs.map { String($0.suffix(1500)) }.joined(separator: "\n---\n"))")
        throw NSError(domain: "AgentClusterTests", code: 1, userInfo: [NSLocalizedDescriptionKey: what])
    }

    func ready(_ i: Int) -> Bool {
        let answer = try? runProcess(["nsenter", "--net=/run/netns/\(nodes[i - 1].netns)", "curl", "-s", "-o", "/dev/null",
                                      "-w", "%{http_code}", "http://127.0.0.1:9876/readyz"])
        return answer?.stdout == "200"
    }

    func ownRoutes(_ i: Int) throws -> String {
        try nodes[i - 1].exec("ip", "route", "show", "proto", "157") + nodes[i - 1].exec("ip", "-6", "route", "show", "proto", "157")
    }

    /// The plugin's config as a runtime derives it from the conflist the agent wrote, with `extra`
    /// keys (runtimeConfig, GC's attachments) as the runtime adds them.
    func pluginConfig(_ i: Int, _ extra: [String: Any] = [:]) throws -> String {
        let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: conflist(i)))) as? [String: Any])
        var plugin = try XCTUnwrap((list["plugins"] as? [[String: Any]])?.first)
        plugin["cniVersion"] = list["cniVersion"]
        plugin["name"] = list["name"]
        plugin.merge(extra) { _, new in new }
        return String(decoding: try JSONSerialization.data(withJSONObject: plugin), as: UTF8.self)
    }

    /// The installed plugin of node `i`, run as the runtime runs it for pod `name`.
    func cni(_ i: Int, _ command: String, pod name: String, netns: String = "", _ extra: [String: Any] = [:]) throws -> CNIOutcome {
        let node = nodes[i - 1]
        return try node.cni(command, containerID: "\(node.prefix)-\(name)", netns: netns, rawConfig: try pluginConfig(i, extra),
                            plugin: binDir(i) + "/swiftpath")
    }

    /// A pod on node `i`, added with the installed plugin and the agent's conflist; its addresses.
    func addPod(_ i: Int, _ name: String, runtimeConfig: [String: Any]? = nil) throws -> (path: String, v4: String, v6: String) {
        let path = try nodes[i - 1].makePod(name)
        let outcome = try cni(i, "ADD", pod: name, netns: path, runtimeConfig.map { ["runtimeConfig": $0] } ?? [:])
        XCTAssertEqual(outcome.status, 0, "ADD on node \(i): \(outcome.stdout) \(outcome.stderr)")
        let ips = (try outcome.json()["ips"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
            .map { String($0.split(separator: "/")[0]) }
        let v4 = try XCTUnwrap(ips.first { !$0.contains(":") })
        let v6 = try XCTUnwrap(ips.first { $0.contains(":") })
        return (path, v4, v6)
    }

    func assertReaches(_ from: (path: String, v4: String, v6: String), _ to: (path: String, v4: String, v6: String),
                               _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for address in [to.v4, to.v6] {
            let ping = try runProcess(["nsenter", "--net=\(from.path)", "ping", "-c", "1", "-W", "2", address])
            XCTAssertEqual(ping.status, 0, "\(what): \(from.v4) to \(address): \(ping.stdout)", file: file, line: line)
        }
    }

    /// A Node object steers nothing but its pods' traffic: a pod CIDR outside the cluster's or a
    /// default route gets no route, and an ExternalIP never joins the addresses pods' traffic is
    /// left unmasqueraded to.
    func testNodeObjectsSteerNothingElse() throws {
        try standIn.putNode("node-2", podCIDRs: podCIDRs(2) + ["0.0.0.0/0", "8.8.8.0/24"], internalIPs: internalIPs(2),
                            externalIPs: ["198.51.100.7"])
        try startAgent(1, ["--masquerade"])
        try waitFor("node 1 ready") { ready(1) }
        func neverMasqueraded() throws -> [String] {
            let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", "\(nodes[0].storeRoot)/datapath/sp_nodes4"])
            let entries = try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [[String: Any]] ?? []
            return entries.map { ($0["key"] as? [String] ?? []).compactMap { UInt8($0.dropFirst(2), radix: 16) }.map(String.init).joined(separator: ".") }
        }
        try waitFor("node 2's address written") { try neverMasqueraded().contains(internalIPs(2)[0]) }
        XCTAssertFalse(try neverMasqueraded().contains("198.51.100.7"), "an ExternalIP stays masqueraded to")
        let own = try shell(["bpftool", "-j", "map", "dump", "pinned", "\(nodes[0].storeRoot)/datapath/sp_local4"])
        XCTAssertTrue(own.contains(#"["0x0a","0x00","0x00","0x01"]"#), "node 1's own address, refused as a source from outside: \(own)")
        let routes = try ownRoutes(1)
        XCTAssertTrue(routes.contains("\(podCIDRs(2)[0]) via \(internalIPs(2)[0])"), routes)
        XCTAssertFalse(routes.contains("8.8.8.0/24"), routes)
        XCTAssertFalse(routes.contains("default"), routes)
    }

    /// Each node's route stands or falls on its own: a node whose InternalIP is on none of this
    /// node's links gets no route, is counted and logged, and every other node still gets its
    /// routes, also those written after it (its pod CIDRs are the first of each family).
    func testAnOffLinkNodeCostsOnlyItsOwnRoute() throws {
        try standIn.putNode("node-0", podCIDRs: ["10.31.0.0/24", "fd00:31:0::/64"], internalIPs: ["10.9.9.9", "fd00:9::9"])
        try startAgent(1, ["--metrics-interval", "1"])
        try waitFor("node 1 ready") { ready(1) }
        try waitFor("the other nodes' routes installed") {
            let routes = try ownRoutes(1)
            return [2, 3].allSatisfy { routes.contains("\(podCIDRs($0)[0]) via \(internalIPs($0)[0])") && routes.contains("\(podCIDRs($0)[1]) via") }
        }
        XCTAssertFalse(try ownRoutes(1).contains("10.31.0.0/24"), "no route through an address on no link")
        XCTAssertEqual(try agentMetric(1, "swiftpath_agent_routes_failed_count"), 2, "one per family")
        let log = try String(contentsOfFile: "\(folder)/agent1.log", encoding: .utf8)
        XCTAssertTrue(log.contains("routes to other nodes' pods refused, the others installed") && log.contains("10.9.9.9"), log)
    }

    /// The masquerade table is checked at every resync: flushed away (as Debian's
    /// nftables.service flushes the ruleset) or changed by hand, it is written back.
    func testMasqueradeTableComesBackAfterAFlush() throws {
        try startAgent(1, ["--masquerade"])
        try waitFor("node 1 ready") { ready(1) }
        let table = { try runProcess(["nsenter", "--net=/run/netns/\(self.nodes[0].netns)", "nft", "list", "table", "inet", "swiftpath"]) }
        try waitFor("the masquerade table written") { try table().stdout.contains("10.31.0.0/16") }
        XCTAssertEqual(try runProcess(["nsenter", "--net=/run/netns/\(nodes[0].netns)", "nft", "flush", "ruleset"]).status, 0)
        XCTAssertNotEqual(try table().status, 0, "gone")
        try waitFor("written back at a resync") { try table().stdout.contains("10.31.0.0/16") }
        XCTAssertEqual(try runProcess(["nsenter", "--net=/run/netns/\(nodes[0].netns)", "nft", "flush", "chain", "inet", "swiftpath",
                                       "postrouting"]).status, 0)
        try waitFor("its rules written back") { try table().stdout.contains("masquerade") }
        XCTAssertTrue(try String(contentsOfFile: "\(folder)/agent1.log", encoding: .utf8).contains("was gone or changed: written again"))
    }

    /// A control plane that goes silent without a FIN or a reset (its process frozen, the kernel
    /// holding its connections open): the watches give up after the idle timeout and are made
    /// again, /readyz names the collections the API server went silent on while /healthz stays
    /// 200 (a restart would not bring the API server back), and once it speaks again the agent
    /// hears it, Services included.
    func testASilentControlPlaneIsNoticed() throws {
        try startAgent(1, ["--watch-idle-timeout", "4"])
        try waitFor("node 1 ready") { ready(1) }
        let probe = { (path: String) throws -> (code: String, body: String) in
            let answer = try runProcess(["nsenter", "--net=/run/netns/\(self.nodes[0].netns)", "curl", "-s", "-m", "3", "-w", "\n%{http_code}",
                                         "http://127.0.0.1:9876" + path]).stdout
            let lines = answer.split(separator: "\n")
            return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
        }
        XCTAssertEqual(try probe("/healthz").code, "200")
        standIn.freeze()
        defer { standIn.thaw() }
        try waitFor("/readyz says the API server went silent") {
            let answer = try probe("/readyz")
            return answer.code == "503" && answer.body.contains("no word from the API server") && answer.body.contains("/api/v1/nodes")
        }
        XCTAssertEqual(try probe("/healthz").code, "200", "the agent's loops still get somewhere")
        XCTAssertGreaterThan(try agentMetric(1, "swiftpath_agent_watch_silence_seconds{path=\"/api/v1/nodes\"}"), 10)
        standIn.thaw()
        try waitFor("heard again") { try probe("/readyz").code == "200" }
        try standIn.putService("default", "after", clusterIPs: ["10.96.0.77"], ports: [("http", "TCP", 80)])
        try waitFor("a Service written after the silence programmed") { try programmedServices(1)["10.96.0.77:80/tcp"] != nil }
        let log = try String(contentsOfFile: "\(folder)/agent1.log", encoding: .utf8)
        XCTAssertTrue(log.split(separator: "\n").contains { $0.contains("watch failed, retrying") && $0.contains("readTimeout") },
                      "the silent watches were given up, not waited on")
    }

    /// A control plane that dies without a word (no FIN, no reset reaches the agent, ever) and
    /// comes back restarted over the same objects: the agent's silent watches run into the idle
    /// timeout and are made again against the new server, and what changes after takes effect
    /// (with a 600 s idle timeout the agent waits on the dead connections and this fails).
    func testAControlPlaneThatDiesSilentlyAndRestartsIsFollowed() throws {
        try startAgent(1, ["--watch-idle-timeout", "4"])
        try waitFor("node 1 ready") { ready(1) }
        // Every connection to the API server carries TCP keepalive probes (30 s idle, 10 s apart).
        let sockets = try nodes[0].exec("ss", "-tno", "state", "established", "dst", "10.0.0.254")
        let watches = sockets.split(separator: "\n").filter { $0.contains("10.0.0.254:\(standIn.port)") }
        XCTAssertGreaterThanOrEqual(watches.count, 3, sockets)
        XCTAssertTrue(watches.allSatisfy { $0.contains("timer:(keepalive") }, sockets)
        try standIn.dieSilentlyAndRestart(down: 2)
        try standIn.putNode("node-2", podCIDRs: ["10.31.92.0/24"], internalIPs: internalIPs(2))
        try waitFor("a Node changed after the restart routed", seconds: 30) { try self.ownRoutes(1).contains("10.31.92.0/24") }
        try standIn.putService("default", "after-restart", clusterIPs: ["10.96.0.78"], ports: [("http", "TCP", 80)])
        try waitFor("a Service written after the restart programmed") { try programmedServices(1)["10.96.0.78:80/tcp"] != nil }
        XCTAssertTrue(ready(1))
        let log = try String(contentsOfFile: "\(folder)/agent1.log", encoding: .utf8)
        XCTAssertTrue(log.split(separator: "\n").contains { $0.contains("watch failed, retrying") && $0.contains("readTimeout") },
                      "the silent watches were given up at the idle timeout")
    }

    /// As the service proxy without a cgroup2 mount, the agent would say ready and balance
    /// nothing: it is not ready, and says why.
    func testNoCgroup2MountMeansNotReady() throws {
        try startAgent(1, withoutCgroup2: true)
        try waitFor("the agent says why") {
            (try? String(contentsOfFile: "\(self.folder)/agent1.log", encoding: .utf8))?.contains("find a cgroup2 mount") == true
        }
        XCTAssertFalse(ready(1))
        XCTAssertTrue(agents[1]?.isRunning == true, "it keeps trying")
    }

    /// Node events that change nothing the agent reads (kubelet's heartbeats: a new
    /// resourceVersion, status the agent ignores) reconcile nothing; a change it reads does.
    func testNodeHeartbeatsReconcileNothing() throws {
        try startAgent(1, ["--resync-seconds", "600"])
        try waitFor("node 1 ready") { ready(1) }
        let reconciles = { try self.agentMetric(1, "swiftpath_agent_reconcile_duration_seconds_count{step=\"routes\"}") }
        sleep(1)
        let before = try reconciles()
        XCTAssertGreaterThan(before, 0)
        for _ in 0..<5 { try standIn.putNode("node-2", podCIDRs: podCIDRs(2), internalIPs: internalIPs(2)) }
        sleep(2)
        XCTAssertEqual(try reconciles(), before, "five heartbeats, no reconcile")
        try standIn.putNode("node-2", podCIDRs: ["10.31.9.0/24"], internalIPs: internalIPs(2))
        try waitFor("a changed pod CIDR reconciled") { try reconciles() > before && self.ownRoutes(1).contains("10.31.9.0/24") }
    }

    /// The conflist waits for the Services: while the agent cannot read the EndpointSlices (its
    /// ClusterRole lacking them, say), no pod may start on this node, since none could reach a
    /// Service; once it can and has programmed them, the conflist is written.
    func testConflistWaitsForTheServices() throws {
        try standIn.forbid("endpointslices")
        try startAgent(1)
        try waitFor("the plugin installed") { FileManager.default.isExecutableFile(atPath: self.binDir(1) + "/swiftpath") }
        sleep(5)   // two resyncs
        XCTAssertFalse(FileManager.default.fileExists(atPath: conflist(1)), "no conflist before the Services are programmed")
        XCTAssertFalse(ready(1))
        try standIn.allow("endpointslices")
        try waitFor("node 1 ready, its conflist written") { ready(1) && FileManager.default.fileExists(atPath: self.conflist(1)) }
    }

    func testThreeNodesInstalledAndRoutedByTheirAgents() throws {
        for i in 1...3 { try startAgent(i) }
        try waitFor("every node ready (datapath, plugin, conflist, watch)") { (1...3).allSatisfy(ready) }

        // Each node's conflist: its own CIDRs, the built-in allocator, a version every runtime reads.
        for i in 1...3 {
            let list = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: conflist(i)))) as? [String: Any])
            XCTAssertEqual(list["cniVersion"] as? String, "1.0.0")
            let ipam = try XCTUnwrap(((list["plugins"] as? [[String: Any]])?.first?["ipam"]) as? [String: Any])
            XCTAssertEqual((ipam["ranges"] as? [[String: String]])?.compactMap { $0["subnet"] }, podCIDRs(i))
            XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binDir(i) + "/swiftpath"))
            let routes = try ownRoutes(i)
            for j in (1...3) where j != i {
                XCTAssertTrue(routes.contains("\(podCIDRs(j)[0]) via \(internalIPs(j)[0])"), "node \(i) routes to node \(j): \(routes)")
                XCTAssertTrue(routes.contains("\(podCIDRs(j)[1]) via \(internalIPs(j)[1])"), "node \(i) routes to node \(j): \(routes)")
            }
        }

        // Pods on every node reach pods on every other node. ADD starts each on tc; its node's
        // agent moves it to its tcx link.
        try waitFor("every agent announced to its plugin") {
            try nodes.allSatisfy { try EndpointStore.openExisting(root: $0.storeRoot)?.isAgentPresent() == true }
        }
        let pods = try (1...3).map { try addPod($0, "p\($0)") }
        try waitFor("every pod moved to its tcx link by its node's agent") {
            try (0..<3).allSatisfy { i in
                try nodes[i].endpoints().allSatisfy { $0.attachment.hasPrefix("tcx link") }
                    && runProcess(["nsenter", "--net=/run/netns/\(nodes[i].netns)", "curl", "-s", "http://127.0.0.1:9876/metrics"]).stdout
                        .contains("swiftpath_agent_pods_promoted_total 1")
            }
        }
        for (a, b) in [(0, 1), (1, 2), (2, 0)] { try assertReaches(pods[a], pods[b], "node \(a + 1) to node \(b + 1)") }

        // A node that leaves the API loses its routes on the others.
        try standIn.deleteNode("node-3")
        try waitFor("node-3's routes gone from nodes 1 and 2") {
            try [1, 2].allSatisfy { !(try ownRoutes($0).contains(podCIDRs(3)[0]) || ownRoutes($0).contains(podCIDRs(3)[1])) }
        }
        XCTAssertTrue(try ownRoutes(1).contains(podCIDRs(2)[0]), "the other routes stay")

        // Node 1's agent killed: pods still start, stop and talk.
        stop(agents[1]!)
        try assertReaches(pods[0], pods[1], "with node 1's agent dead")
        let late = try addPod(1, "late")
        try assertReaches(late, pods[1], "a pod added while the agent is dead")
        let deleted = try nodes[0].cni("DEL", containerID: "\(nodes[0].prefix)-late", netns: late.path, rawConfig: try pluginConfig(1),
                                       plugin: binDir(1) + "/swiftpath")
        XCTAssertEqual(deleted.status, 0, "DEL with the agent dead: \(deleted.stdout)")

        // Restarted: nothing that did not change is rewritten.
        let before = try (FileManager.default.attributesOfItem(atPath: conflist(1)), FileManager.default.attributesOfItem(atPath: binDir(1) + "/swiftpath"),
                          ownRoutes(1))
        try startAgent(1)
        try waitFor("node 1 ready again") { ready(1) }
        sleep(3)   // a resync or more
        let after = try (FileManager.default.attributesOfItem(atPath: conflist(1)), FileManager.default.attributesOfItem(atPath: binDir(1) + "/swiftpath"),
                         ownRoutes(1))
        for key in [FileAttributeKey.systemFileNumber, .modificationDate] {
            XCTAssertEqual(before.0[key] as? AnyHashable, after.0[key] as? AnyHashable, "conflist \(key) unchanged")
            XCTAssertEqual(before.1[key] as? AnyHashable, after.1[key] as? AnyHashable, "plugin binary \(key) unchanged")
        }
        XCTAssertEqual(before.2, after.2, "routes unchanged")
        try assertReaches(pods[0], pods[1], "after the agent's restart")

        // With the agent up, DEL retires the veth (the pod's interface name is free at once) and
        // the agent deletes it.
        let brief = try addPod(1, "brief")
        let retiring = try cni(1, "DEL", pod: "brief", netns: brief.path)
        XCTAssertEqual(retiring.status, 0, "DEL with the agent up: \(retiring.stdout)")
        XCTAssertNotEqual(try runProcess(["nsenter", "--net=\(brief.path)", "ip", "link", "show", "eth0"]).status, 0)
        try waitFor("the retired veth deleted by the agent") {
            try nodes[0].exec("ip", "-o", "link", "show", "group", "\(RetiredVeths.deviceGroup)").isEmpty
                && ((try? FileManager.default.contentsOfDirectory(atPath: nodes[0].storeRoot + "/retired")) ?? []).isEmpty
                && runProcess(["nsenter", "--net=/run/netns/\(nodes[0].netns)", "curl", "-s", "http://127.0.0.1:9876/metrics"]).stdout
                    .contains("swiftpath_agent_retired_veths_reaped_total 1")
        }

        let metrics = try runProcess(["nsenter", "--net=/run/netns/\(nodes[0].netns)", "curl", "-s", "http://127.0.0.1:9876/metrics"]).stdout
        XCTAssertTrue(metrics.contains("swiftpath_datapath_packets_total{"), "the datapath's counters are exported")
        XCTAssertTrue(metrics.contains("swiftpath_agent_routes_owned_count 2"), metrics)

        // SIGTERM: the agent ends and leaves the node as it was; uninstall then removes it all.
        let agent2 = agents[2]!
        kill(agent2.processIdentifier, SIGTERM)
        agent2.waitUntilExit()
        XCTAssertEqual(agent2.terminationStatus, 0, "a clean stop")
        XCTAssertTrue(FileManager.default.fileExists(atPath: conflist(2)))
        XCTAssertTrue(try ownRoutes(2).contains(podCIDRs(1)[0]), "routes stay after SIGTERM")
        try assertReaches(pods[1], pods[0], "after node 2's agent stopped")
        let uninstall = try runProcess(["nsenter", "--net=/run/netns/\(nodes[1].netns)", agentBinary, "uninstall", "--node-name", "node-2",
                                        "--cni-bin-dir", binDir(2), "--cni-conf-dir", confDir(2), "--store-root", nodes[1].storeRoot])
        XCTAssertEqual(uninstall.status, 0, uninstall.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: conflist(2)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: binDir(2) + "/swiftpath"))
        XCTAssertEqual(try ownRoutes(2), "", "swiftpath's routes removed")
        XCTAssertTrue(try nodes[1].exec("ip", "route", "show").contains("10.0.0.0/24"), "the node's own routes stay")
        XCTAssertFalse(FileManager.default.fileExists(atPath: nodes[1].storeRoot + "/datapath"), "the datapath unloaded")
    }
}
