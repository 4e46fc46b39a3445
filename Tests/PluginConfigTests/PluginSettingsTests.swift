// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import Datapath
import NetAddress
import PluginConfig
import XCTest

/// The plugin's keys as the agent writes them and the plugin reads them: one type both ways.
final class PluginSettingsTests: XCTestCase {
    /// Through JSON bytes, as the conflist file carries them.
    private func readBack(_ settings: PluginSettings) throws -> (settings: PluginSettings, problems: [CNIError]) {
        let bytes = JSONCoding.encode(JSONValue.object(settings.networkConfigKeys))
        guard case .object(let keys) = try JSONCoding.decode(JSONValue.self, from: bytes) else { throw CNIError(.decodingFailure, "not an object") }
        return PluginSettings.parse(keys)
    }

    func testEveryKeyWrittenIsReadBackAsItWas() throws {
        var settings = PluginSettings()
        settings.mtu = 1400
        settings.storeRoot = "/sys/fs/bpf/elsewhere"
        settings.logFile = "/var/log/swiftpath.log"
        settings.devices = ["eth1", "bond0"]
        settings.attachMode = .tc
        settings.ipMasq = true
        settings.clusterCIDRs = [IPPrefix("10.1.0.0/16")!, IPPrefix("fd00:1::/48")!]
        settings.socketLB.enabled = false
        settings.socketLB.perPod = true
        settings.socketLB.cgroupRoot = "/sys/fs/cgroup/kubepods"
        settings.socketLB.hostNamespace = false
        settings.ipamTimeout = 5
        let read = try readBack(settings)
        XCTAssertEqual(read.problems.map(\.msg), [])
        XCTAssertEqual(read.settings, settings)
        XCTAssertEqual(Set(settings.networkConfigKeys.keys), Set(PluginSettings.Key.allCases.map(\.rawValue)), "every key is written, and known")
        guard case .object(let socketLB) = settings.networkConfigKeys["socketLB"] else { return XCTFail("no socketLB") }
        XCTAssertEqual(Set(socketLB.keys), Set(PluginSettings.SocketLBKey.allCases.map(\.rawValue)))
    }

    func testDefaultsWriteOnlyTheStoreAndMasquerading() throws {
        XCTAssertEqual(Set(PluginSettings().networkConfigKeys.keys), ["bpffsRoot", "ipMasq"])
        XCTAssertEqual(try readBack(PluginSettings()).settings, PluginSettings())
    }

    func testTheAgentsAndTheVerbsNodeSetupComeFromTheSameKeys() {
        var settings = PluginSettings()
        settings.ipMasq = true
        settings.clusterCIDRs = [IPPrefix("10.1.0.0/16")!]
        settings.socketLB.hostNamespace = false
        let setup = settings.nodeSetup(uplinks: [("eth1", 7)], socketCgroup: "/sys/fs/cgroup/unified")
        XCTAssertEqual(setup.attachPolicy, .auto)
        XCTAssertTrue(setup.masquerade)
        XCTAssertEqual(setup.clusterCIDRs, settings.clusterCIDRs)
        XCTAssertEqual(setup.socketCgroup, "/sys/fs/cgroup/unified")
        XCTAssertTrue(setup.socketLB)
        XCTAssertFalse(setup.balanceNodeProcesses)
        XCTAssertEqual(setup.uplinks.map(\.index), [7])
    }

    func testABadValueKeepsItsDefaultAndNamesItsKey() {
        let (settings, problems) = PluginSettings.parse(["mtu": .number(10), "socketLB": .object(["scope": .string("cluster")])])
        XCTAssertNil(settings.mtu)
        XCTAssertFalse(settings.socketLB.perPod)
        XCTAssertEqual(problems.map(\.msg), ["invalid value for key \"mtu\" in network config",
                                             "invalid value for key \"socketLB.scope\" in network config"])
        XCTAssertEqual(problems.map(\.code.rawValue), [7, 7])
    }
}
