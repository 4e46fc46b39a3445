// SPDX-License-Identifier: Apache-2.0
import Foundation
import Netlink
import Netns
import NodeStore
import SystemCallSupport
import XCTest

/// Runs a program and returns its exit status and output. Tests use real tools (ip, ping) and the
/// real plugin binary, exactly as a runtime would run it.
@discardableResult
func runProcess(_ argv: [String], environment: [String: String]? = nil, stdin: String = "") throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = argv
    if let environment { process.environment = environment }
    let input = Pipe(), output = Pipe(), errors = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try input.fileHandleForWriting.close()
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let err = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    // Foundation keeps pipe ends open until the handles are freed; close them now, or a long test
    // run exhausts its descriptors and the cleanup commands at the end cannot start.
    for handle in [input.fileHandleForReading, output.fileHandleForReading, output.fileHandleForWriting,
                   errors.fileHandleForReading, errors.fileHandleForWriting] {
        try? handle.close()
    }
    return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
}

/// `ip` and friends; a failure here is a broken test environment, reported as such.
@discardableResult
func shell(_ argv: String...) throws -> String { try shell(argv) }

@discardableResult
func shell(_ argv: [String]) throws -> String {
    let result = try runProcess(argv)
    guard result.status == 0 else {
        throw NSError(domain: "sh", code: Int(result.status),
                      userInfo: [NSLocalizedDescriptionKey: "\(argv.joined(separator: " ")): \(result.stderr)"])
    }
    return result.stdout
}

/// A helper script of this folder (echo.py, lbserver.py, lbclient.py).
func testScript(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(name).path
}

/// Starts a helper server in `netns` and returns once it printed its first line ("ready": bound).
/// The caller stops it.
func startServer(in netns: String, _ script: String, _ arguments: [String]) throws -> Process {
    let server = Process()
    server.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
    server.arguments = ["--net=\(netns)", "python3", testScript(script)] + arguments
    let ready = Pipe()
    server.standardOutput = ready
    try server.run()
    _ = ready.fileHandleForReading.availableData
    return server
}

/// The built plugin, next to the test bundle in the build folder.
let pluginBinary: String = {
    if let path = ProcessInfo.processInfo.environment["SWIFTPATH_BIN"] { return path }
    var folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    while !FileManager.default.fileExists(atPath: folder.appendingPathComponent("swiftpath").path), folder.path != "/" {
        folder.deleteLastPathComponent()
    }
    return folder.appendingPathComponent("swiftpath").path
}()

/// The cgroup v2 hierarchy (on this hybrid host, /sys/fs/cgroup/unified).
let cgroup2Mount = CgroupV2.mountPoint() ?? "/sys/fs/cgroup"

/// Where Debian's containernetworking-plugins put host-local and ptp.
let referencePlugins = "/usr/lib/cni"

private let runID = String(getpid() % 100_000)
nonisolated(unsafe) private var nodeCounter = 0

/// A simulated node: its own netns (the plugin runs inside it through nsenter, which keeps the
/// host's mounts, bpffs among them, where `ip netns exec` would remount /sys), its own bpffs store
/// root, pods as further netns. Everything it makes carries a unique
/// prefix and is removed by `tearDown`, which the test case registers at once.
final class TestNode {
    let prefix: String
    let netns: String
    let storeRoot: String
    let network: String
    let ipamDataDir: String
    /// A cgroup v2 directory of the node's own: the socket LB hooks go here, never on the host's root.
    let cgroup: String
    private(set) var pods: [String] = []
    /// The built-in allocator's ranges for this node's pods.
    var podRanges = (v4: "10.123.0.0/24", v6: "fd00:123::/64")
    /// The `devices` key: nil leaves it out (the default-route devices).
    var devices: [String]? = nil

    init(_ testCase: XCTestCase) throws {
        if nodeCounter == 0 { Self.removeLeftoversOfDeadRuns() }
        nodeCounter += 1
        prefix = "spt\(runID)n\(nodeCounter)"
        netns = "\(prefix)-node"
        storeRoot = "/sys/fs/bpf/\(prefix)"
        network = "\(prefix)-net"
        ipamDataDir = "/tmp/\(prefix)-ipam"
        cgroup = "\(cgroup2Mount)/\(prefix)"
        testCase.addTeardownBlock { [self] in self.tearDown() }
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: false)
        try shell("ip", "netns", "add", netns)
        try exec("ip", "link", "set", "lo", "up")
        // A node address, the source of the node's own packets to its pods.
        try exec("ip", "addr", "add", "192.0.2.1/32", "dev", "lo")
        try exec("ip", "addr", "add", "2001:db8::1/128", "dev", "lo", "nodad")
    }

    /// A command run inside the node's netns.
    @discardableResult
    func exec(_ argv: String...) throws -> String { try shell(["nsenter", "--net=/run/netns/\(netns)"] + argv) }

    /// `body` run on this thread inside the node's netns, where the plugin and the agent run.
    func inNodeNetns<T, E: Error>(_ body: () throws(E) -> T) throws -> T {
        try NetworkNamespace.open("/run/netns/\(netns)").run(body).get()
    }

    /// A netlink socket of the node's netns.
    func netlink() throws -> NetlinkSocket { try inNodeNetns { () throws(SystemCallError) in try NetlinkSocket() } }

    /// The node's store, which the first ADD (or the agent) makes.
    func store() throws -> EndpointStore { try XCTUnwrap(try EndpointStore.openExisting(root: storeRoot)) }

    /// The index of a device in the node netns (sysfs shows the host's, not the node's, under nsenter).
    func ifindex(of device: String) throws -> Int32 {
        let line = try exec("ip", "-o", "link", "show", device)
        guard let index = Int32(line.prefix { $0 != ":" }) else { throw NSError(domain: "ifindex", code: 1) }
        return index
    }

    /// Makes a pod netns and returns its path.
    func makePod(_ name: String) throws -> String {
        let podNetns = "\(prefix)-\(name)"
        try shell("ip", "netns", "add", podNetns)
        pods.append(podNetns)
        return "/run/netns/\(podNetns)"
    }

    func deletePod(_ path: String) throws {
        let name = URL(fileURLWithPath: path).lastPathComponent
        try shell("ip", "netns", "del", name)
        pods.removeAll { $0 == name }
    }

    /// A command run inside a pod.
    func inPod(_ path: String, _ argv: String...) throws -> (status: Int32, stdout: String, stderr: String) {
        try runProcess(["nsenter", "--net=\(path)"] + argv)
    }

    /// The conflist entry for this node, with the built-in allocator or host-local.
    func config(ipam: IPAMKind = .builtin, version: String = "1.1.0", extra: [String: Any] = [:]) -> [String: Any] {
        var config: [String: Any] = [
            "cniVersion": version, "name": network, "type": "swiftpath", "bpffsRoot": storeRoot,
            "logFile": "/tmp/\(prefix).log", "socketLB": ["cgroupRoot": cgroup],
        ]
        switch ipam {
        case .builtin:
            config["ipam"] = ["type": "swiftpath", "ranges": [["subnet": podRanges.v4], ["subnet": podRanges.v6]]]
        case .hostLocal:
            config["ipam"] = ["type": "host-local", "dataDir": ipamDataDir,
                              "ranges": [[["subnet": "10.124.0.0/24"]], [["subnet": "fd00:124::/64"]]]]
        }
        if let devices { config["devices"] = devices }
        for (key, value) in extra { config[key] = value }
        return config
    }

    /// Runs the plugin as a runtime does: CNI_* in the environment, the config on stdin.
    func cni(_ command: String, containerID: String = "", netns: String = "", ifname: String = "eth0",
             config: [String: Any], environment extra: [String: String?] = [:], plugin: String = pluginBinary) throws -> CNIOutcome {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: config), as: UTF8.self)
        return try cni(command, containerID: containerID, netns: netns, ifname: ifname, rawConfig: json, environment: extra,
                       plugin: plugin)
    }

    func cni(_ command: String, containerID: String = "", netns: String = "", ifname: String = "eth0",
             rawConfig: String, environment extra: [String: String?] = [:], plugin: String = pluginBinary) throws -> CNIOutcome {
        var environment = [
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": containerID,
            "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": referencePlugins,
        ]
        for (key, value) in extra { environment[key] = value }
        let result = try runProcess(["nsenter", "--net=/run/netns/\(self.netns)", plugin],
                             environment: environment, stdin: rawConfig)
        return CNIOutcome(status: result.status, stdout: result.stdout, stderr: result.stderr)
    }

    func add(_ containerID: String, pod: String, ipam: IPAMKind = .builtin, version: String = "1.1.0") throws -> CNIResultView {
        let outcome = try cni("ADD", containerID: containerID, netns: pod, config: config(ipam: ipam, version: version))
        XCTAssertEqual(outcome.status, 0, "ADD failed: \(outcome.stdout) \(outcome.stderr)")
        return try outcome.result()
    }

    /// Links of the node netns whose names swiftpath gives host ends.
    func hostVeths() throws -> [String] {
        try exec("ip", "-o", "link", "show", "type", "veth").split(separator: "\n")
            .map { String($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces).split(separator: "@")[0]) }
    }

    func endpoints() throws -> [RecordedEndpoint] {
        let result = try runProcess([pluginBinary, "endpoint", "list", "--store-root", storeRoot, "-o", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return try JSONDecoder().decode([RecordedEndpoint].self, from: Data(result.stdout.utf8))
    }

    /// How many addresses the built-in allocator has leased (read with bpftool, not with swiftpath).
    func leaseCount() throws -> Int {
        let dump = try shell(["bpftool", "-j", "map", "dump", "pinned", "\(storeRoot)/ip_leases_v1"])
        return (try JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [Any])?.count ?? -1
    }

    /// The addresses host-local holds (one file per address in its data dir).
    func hostLocalReservations() -> [String] {
        let folder = "\(ipamDataDir)/\(network)"
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.contains(".") || $0.contains(":") }.filter { !$0.hasPrefix("last_reserved") && $0 != "lock" }
    }

    /// A test process that crashed could not run its teardown: what its prefix names (netns,
    /// bpffs folders, IPAM folders) is removed by the next run, once that process is gone.
    static func removeLeftoversOfDeadRuns() {
        func deadRunPrefix(_ name: String) -> Bool {
            guard name.hasPrefix("spt"), let n = name.dropFirst(3).firstIndex(of: "n"),
                  let pid = Int32(name.dropFirst(3)[..<n]) else { return false }
            return pid != getpid() && kill(pid, 0) != 0
        }
        let namespaces = ((try? runProcess(["ip", "netns", "list"]).stdout) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }
        for name in namespaces where deadRunPrefix(name) { _ = try? runProcess(["ip", "netns", "del", name]) }
        for folder in ["/sys/fs/bpf", "/tmp"] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where deadRunPrefix(name) {
                _ = try? runProcess(["rm", "-rf", "\(folder)/\(name)"])
            }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cgroup2Mount)) ?? [] where deadRunPrefix(name) {
            rmdir("\(cgroup2Mount)/\(name)")   // a cgroup goes with rmdir, once empty
        }
    }

    func tearDown() {
        defer { XCTAssertEqual(runningPodNamespaces(), [], "teardown removed every netns of \(prefix)") }
        for pod in pods { _ = try? runProcess(["ip", "netns", "del", pod]) }
        _ = try? runProcess(["ip", "netns", "del", netns])
        // Unpinning every map, program and link of the store detaches whatever is still attached.
        _ = try? runProcess(["rm", "-rf", storeRoot])
        // Processes a test started in the cgroups are gone by now; empty cgroups can be removed.
        for child in (try? FileManager.default.contentsOfDirectory(atPath: cgroup)) ?? [] where !child.contains(".") {
            rmdir("\(cgroup)/\(child)")
        }
        rmdir(cgroup)
        try? FileManager.default.removeItem(atPath: ipamDataDir)
        try? FileManager.default.removeItem(atPath: "/tmp/\(prefix).log")
    }
}

extension XCTestCase {
    /// What a refused ADD must leave on `node`: no veth, record, lease or host-local reservation.
    func assertNothingChanged(_ node: TestNode, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try node.hostVeths(), [], "no veth left", file: file, line: line)
        XCTAssertEqual(try node.endpoints().count, 0, "no record left", file: file, line: line)
        if FileManager.default.fileExists(atPath: "\(node.storeRoot)/ip_leases_v1") {
            XCTAssertEqual(try node.leaseCount(), 0, "no lease left", file: file, line: line)
        }
        XCTAssertEqual(node.hostLocalReservations(), [], "no host-local reservation left", file: file, line: line)
    }
}

/// The netns of this node still present: the check that teardown really ran.
extension TestNode {
    func runningPodNamespaces() -> [String] {
        ((try? runProcess(["ip", "netns", "list"]).stdout) ?? "").split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }.filter { $0.hasPrefix(prefix + "-") }
    }
}

enum IPAMKind { case builtin, hostLocal }

struct CNIOutcome {
    let status: Int32
    let stdout: String
    let stderr: String

    func json() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] ?? [:]
    }

    /// stdout as a CNI result.
    func result() throws -> CNIResultView {
        var result = try JSONDecoder().decode(CNIResultView.self, from: Data(stdout.utf8))
        result.printed = try json()
        return result
    }

    /// stdout as a CNI error object, or nil when it is none.
    var error: CNIErrorView? { try? JSONDecoder().decode(CNIErrorView.self, from: Data(stdout.utf8)) }
    var errorCode: Int? { error?.code }
    var errorMessage: String { error?.msg ?? stdout }
}

/// A CNI result as the spec lays it out, decoded with types of the tests' own (not the plugin's):
/// a required key the plugin misspells, or any key it mistypes, fails the decoding.
struct CNIResultView: Decodable {
    struct Interface: Decodable, Equatable {
        let name: String
        let mac: String?
        let mtu: Int?
        let sandbox: String?
    }

    struct IPConfig: Decodable, Equatable {
        /// "4" or "6", in results before 1.0.0 only.
        let version: String?
        let address: String
        let gateway: String?
        let interface: Int?
    }

    struct Route: Decodable, Equatable {
        let dst: String
        let gw: String?
    }

    let cniVersion: String
    let interfaces: [Interface]
    let ips: [IPConfig]
    let routes: [Route]?
    /// The result as printed, for a later verb's `prevResult`.
    fileprivate(set) var printed: [String: Any] = [:]

    private enum CodingKeys: String, CodingKey { case cniVersion, interfaces, ips, routes }

    /// The pod addresses, without prefix lengths.
    var podAddresses: [String] { ips.compactMap { $0.address.split(separator: "/").first.map(String.init) } }
}

/// A CNI error object.
struct CNIErrorView: Decodable, Equatable {
    let cniVersion: String?
    let code: Int
    let msg: String
    let details: String?
}

/// An endpoint as `swiftpath endpoint list -o json` prints it.
struct RecordedEndpoint: Decodable, Equatable {
    let containerID: String
    let ifname: String
    let network: String
    let netns: String
    let hostInterface: String
    let hostIfindex: Int32
    let hostMAC: String
    let podMAC: String
    let mtu: Int
    let addresses: [String]
    let ipam: String
    /// "tcx link 12", "tc prog 40", or "none".
    let attachment: String
}

/// A service as `swiftpath service list -o json` prints it.
struct ListedService: Decodable, Equatable {
    let service: String
    let backends: [String]
    let affinitySeconds: UInt32?
    /// "cluster" or "local" where clients from outside the node reach it.
    let external: String?
    let localBackends: [String]?
    let sourceRanges: [String]?
    /// The pod whose host port this is, when it is one.
    let hostPortOf: String?

    /// `service list -o json`'s output, by "address:port/proto".
    static func byKey(_ json: String) throws -> [String: ListedService] {
        Dictionary(uniqueKeysWithValues: try JSONDecoder().decode([ListedService].self, from: Data(json.utf8)).map { ($0.service, $0) })
    }
}

/// A translated connection as `swiftpath service connections -o json` prints it.
struct ListedConnection: Decodable, Equatable {
    let proto: String
    let client: String
    let service: String
    let nodeSource: String?
    let backend: String
    let idleSeconds: UInt64
    let closing: Bool
    let unconfirmed: Bool
}
