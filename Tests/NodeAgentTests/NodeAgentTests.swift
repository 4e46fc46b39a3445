// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import Foundation
import KubernetesAPI
import NetAddress
import Netlink
@testable import NodeAgent
import PluginConfig
import XCTest

/// The agent's pure parts: the conflist it writes and the routes it wants.
final class NodeAgentTests: XCTestCase {
    private func node(_ name: String, _ cidrs: [String], _ ips: [String]) -> Node {
        Node(metadata: ObjectMeta(name: name), spec: .init(podCIDRs: cidrs),
             status: .init(addresses: ips.map { .init(type: "InternalIP", address: $0) } + [.init(type: "ExternalIP", address: "203.0.113.9")]))
    }

    func testRoutesGoToEveryOtherNodesCIDRsViaItsAddressOfThatFamily() {
        let nodes = [node("a", ["10.1.1.0/24", "fd00:1:1::/64"], ["10.0.0.1", "fd00::1"]),
                     node("b", ["10.1.2.0/24", "fd00:1:2::/64"], ["10.0.0.2", "fd00::2"]),
                     node("c", ["10.1.3.0/24", "fd00:1:3::/64"], ["10.0.0.3"])]
        let routes = NodeRoutes.desired(nodes: nodes, ownName: "a")
        XCTAssertEqual(routes.map(\.description), [
            "10.1.2.0/24 via 10.0.0.2 proto 157", "fd00:1:2::/64 via fd00::2 proto 157",
            "10.1.3.0/24 via 10.0.0.3 proto 157",   // c has no IPv6 InternalIP: no IPv6 route to it
        ])
        XCTAssertTrue(routes.allSatisfy { $0.proto == NodeRoutes.proto })
    }

    /// A Node object steers no other traffic: no default route, nothing outside the cluster's CIDRs.
    func testPodCIDRsThatWouldStealOtherRoutesGetNone() {
        let nodes = [node("a", [], ["10.0.0.1"]), node("evil", ["0.0.0.0/0", "::/0", "0.0.0.0/1", "128.0.0.0/1", "8.8.8.0/24", "10.1.9.0/24"], ["10.0.0.9", "fd00::9"])]
        XCTAssertEqual(NodeRoutes.desired(nodes: nodes, ownName: "a").map(\.description),
                       ["8.8.8.0/24 via 10.0.0.9 proto 157", "10.1.9.0/24 via 10.0.0.9 proto 157"], "no default route, ever")
        XCTAssertEqual(NodeRoutes.desired(nodes: nodes, ownName: "a", clusterCIDRs: [IPPrefix("10.1.0.0/16")!]).map(\.description),
                       ["10.1.9.0/24 via 10.0.0.9 proto 157"], "only inside the cluster's CIDRs when they are known")
        XCTAssertEqual(NodeRoutes.refused(nodes: nodes, ownName: "a", clusterCIDRs: [IPPrefix("10.1.0.0/16")!]),
                       ["evil: 0.0.0.0/0", "evil: 0.0.0.0/1", "evil: 128.0.0.0/1", "evil: 8.8.8.0/24", "evil: ::/0"],
                       "what the operator hears about")
    }

    func testTheOlderSinglePodCIDRIsRead() {
        let old = Node(metadata: ObjectMeta(name: "old"), spec: .init(podCIDR: "10.9.0.0/24"),
                       status: .init(addresses: [.init(type: "InternalIP", address: "10.0.0.9")]))
        XCTAssertEqual(NodeRoutes.desired(nodes: [old], ownName: "a").map(\.description), ["10.9.0.0/24 via 10.0.0.9 proto 157"])
    }

    func testConflistCarriesTheNodesCIDRsAndSettingsInVersion100() throws {
        var settings = AgentSettings(nodeName: "a", pluginBinary: "/bin/true")
        settings.devices = ["eth1"]
        settings.cgroupRoot = "/sys/fs/cgroup/kubepods"
        settings.clusterCIDRs = [IPPrefix("10.1.0.0/16")!]
        settings.masquerade = true
        let conflist = Conflist(settings: settings, podCIDRs: [IPPrefix("10.1.1.0/24")!, IPPrefix("fd00:1:1::/64")!], mtu: 1450)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(conflist.bytes)) as? [String: Any])
        XCTAssertEqual(json["cniVersion"] as? String, "1.0.0")
        let plugin = try XCTUnwrap((json["plugins"] as? [[String: Any]])?.first)
        XCTAssertEqual(plugin["type"] as? String, "swiftpath")
        XCTAssertEqual(plugin["mtu"] as? Int, 1450)
        XCTAssertEqual(plugin["devices"] as? [String], ["eth1"])
        XCTAssertEqual(plugin["ipMasq"] as? Bool, true)
        XCTAssertEqual(plugin["clusterCIDRs"] as? [String], ["10.1.0.0/16"])
        XCTAssertEqual((plugin["socketLB"] as? [String: String])?["cgroupRoot"], "/sys/fs/cgroup/kubepods")
        let ipam = try XCTUnwrap(plugin["ipam"] as? [String: Any])
        XCTAssertEqual(ipam["type"] as? String, "swiftpath")
        XCTAssertEqual((ipam["ranges"] as? [[String: String]])?.compactMap { $0["subnet"] }, ["10.1.1.0/24", "fd00:1:1::/64"])
        XCTAssertEqual(conflist.bytes, Conflist(settings: settings, podCIDRs: [IPPrefix("10.1.1.0/24")!, IPPrefix("fd00:1:1::/64")!], mtu: 1450).bytes,
                       "the same conflist is the same bytes, so an unchanged one is never rewritten")
    }

    /// The conflist's bytes as the previous release wrote them: an upgraded agent must not rewrite
    /// (and so touch) an unchanged node's conflist.
    func testTheConflistsBytesAreThoseOfThePreviousRelease() {
        var settings = AgentSettings(nodeName: "a", pluginBinary: "/bin/true")
        settings.devices = ["eth1"]
        settings.cgroupRoot = "/sys/fs/cgroup/kubepods"
        settings.clusterCIDRs = [IPPrefix("10.1.0.0/16")!]
        settings.masquerade = true
        settings.pluginLogFile = "/var/log/swiftpath.log"
        let conflist = Conflist(settings: settings, podCIDRs: [IPPrefix("10.1.1.0/24")!, IPPrefix("fd00:1:1::/64")!], mtu: 1450)
        XCTAssertEqual(String(decoding: conflist.bytes, as: UTF8.self), #"""
            {
              "cniVersion" : "1.0.0",
              "name" : "swiftpath",
              "plugins" : [
                {
                  "bpffsRoot" : "/sys/fs/bpf/swiftpath",
                  "capabilities" : {
                    "portMappings" : true
                  },
                  "clusterCIDRs" : [
                    "10.1.0.0/16"
                  ],
                  "devices" : [
                    "eth1"
                  ],
                  "ipMasq" : true,
                  "ipam" : {
                    "ranges" : [
                      {
                        "subnet" : "10.1.1.0/24"
                      },
                      {
                        "subnet" : "fd00:1:1::/64"
                      }
                    ],
                    "type" : "swiftpath"
                  },
                  "logFile" : "/var/log/swiftpath.log",
                  "mtu" : 1450,
                  "socketLB" : {
                    "cgroupRoot" : "/sys/fs/cgroup/kubepods"
                  },
                  "type" : "swiftpath"
                }
              ]
            }
            """# + "\n")
    }

    /// The plugin reads the conflist's entry back into the very settings the agent wrote it from.
    func testThePluginReadsBackWhatTheAgentWrote() throws {
        var settings = AgentSettings(nodeName: "a", pluginBinary: "/bin/true")
        settings.storeRoot = "/sys/fs/bpf/other"
        settings.devices = ["eth1"]
        settings.cgroupRoot = "/sys/fs/cgroup/kubepods"
        settings.clusterCIDRs = [IPPrefix("10.1.0.0/16")!, IPPrefix("fd00:1::/48")!]
        settings.masquerade = true
        settings.pluginLogFile = "/var/log/swiftpath.log"
        let conflist = Conflist(settings: settings, podCIDRs: [IPPrefix("10.1.1.0/24")!], mtu: 1450)
        guard case .object(let file) = try JSONCoding.decode(JSONValue.self, from: conflist.bytes),
              case .array(let plugins) = file["plugins"], case .object(let entry) = plugins.first else { return XCTFail("no plugin entry") }
        let (read, problems) = PluginSettings.parse(entry)
        XCTAssertEqual(problems.map(\.msg), [])
        XCTAssertEqual(read, conflist.plugin)
        XCTAssertEqual(read.storeRoot, "/sys/fs/bpf/other")
        XCTAssertEqual(read.mtu, 1450)
        XCTAssertEqual(read.socketLB.cgroupRoot, "/sys/fs/cgroup/kubepods")
        XCTAssertEqual(read.logFile, "/var/log/swiftpath.log")
    }

    /// Settings whose conflist every ADD would refuse are refused before the agent starts.
    func testSettingsThePluginWouldRefuseAreNamed() {
        var settings = AgentSettings(nodeName: "a", pluginBinary: "/bin/true")
        XCTAssertEqual(settings.pluginProblems, [])
        settings.masquerade = true
        XCTAssertEqual(settings.pluginProblems.count, 1)
        XCTAssertTrue(settings.pluginProblems.first?.contains("clusterCIDRs") == true, "\(settings.pluginProblems)")
        settings.clusterCIDRs = [IPPrefix("10.1.0.0/16")!]
        settings.pluginLogFile = "relative.log"
        XCTAssertTrue(settings.pluginProblems.first?.contains("logFile") == true, "\(settings.pluginProblems)")
    }

    /// A write in progress is under a name no runtime reads as a network config, and what an agent
    /// killed mid-write left is removed at the next start, nothing else.
    func testUnfinishedWritesAreNoConfigAndAreSweptAway() throws {
        let folder = NSTemporaryDirectory() + "swiftpath-leftovers-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let temporary = AtomicFile.temporaryPath(for: folder + "/10-swiftpath.conflist")
        for extensionLibCNIReads in [".conf", ".conflist", ".json"] {
            XCTAssertFalse(temporary.hasSuffix(extensionLibCNIReads), temporary)
        }
        XCTAssertTrue(temporary.hasPrefix(folder + "/"))
        for name in [(temporary as NSString).lastPathComponent, ".swiftpath-swiftpath-77.tmp", ".swiftpath-4242-10-swiftpath.conflist",
                     "10-other.conflist", ".swiftpath-keep"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/" + name, contents: Data("x".utf8)))
        }
        XCTAssertEqual(AtomicFile.removeLeftovers(in: folder), 3, "an earlier agent's .swiftpath-PID-NAME too")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(), [".swiftpath-keep", "10-other.conflist"])
    }

    func testAtomicWritesOnlyWhatChanged() throws {
        let folder = NSTemporaryDirectory() + "swiftpath-atomic-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/10-test.conflist"
        XCTAssertTrue(try AtomicFile.write(Array("one".utf8), to: path, permissions: [.ownerReadWrite]))
        let inode = try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64
        XCTAssertFalse(try AtomicFile.write(Array("one".utf8), to: path, permissions: [.ownerReadWrite]))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64, inode, "untouched")
        XCTAssertTrue(try AtomicFile.write(Array("two".utf8), to: path, permissions: [.ownerReadWriteExecute]))
        XCTAssertEqual(AtomicFile.read(path), Array("two".utf8))
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int, 0o700)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder), ["10-test.conflist"], "no temporary file left")
    }

    func testCopiesABinaryOnlyWhenItDiffers() throws {
        let folder = NSTemporaryDirectory() + "swiftpath-copy-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }   // several chunks
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/source", contents: Data(big)))
        let target = folder + "/installed"
        XCTAssertTrue(try AtomicFile.copy(folder + "/source", to: target, permissions: [.ownerReadWriteExecute]))
        XCTAssertEqual(AtomicFile.read(target), big)
        XCTAssertFalse(try AtomicFile.copy(folder + "/source", to: target, permissions: [.ownerReadWriteExecute]), "the same bytes")
        var changed = big
        changed[250_000] ^= 1
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/source", contents: Data(changed)))
        XCTAssertTrue(try AtomicFile.copy(folder + "/source", to: target, permissions: [.ownerReadWriteExecute]), "one byte differs")
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/source", contents: Data(changed + [1])))
        XCTAssertTrue(try AtomicFile.copy(folder + "/source", to: target, permissions: [.ownerReadWriteExecute]), "longer")
        XCTAssertEqual(AtomicFile.read(target), changed + [1])
        XCTAssertThrowsError(try AtomicFile.copy(folder + "/missing", to: target, permissions: [.ownerReadWriteExecute]))
    }
}
