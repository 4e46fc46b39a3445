// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import NetAddress
import XCTest

final class EnvironmentTests: XCTestCase {
    private let complete = ["CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/x",
                            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin:/usr/lib/cni"]

    func testReadsACompleteEnvironment() throws {
        let environment = try CNIEnvironment(complete.merging(["CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web"]) { $1 })
        XCTAssertEqual(environment.command, .add)
        XCTAssertEqual(environment.path, ["/opt/cni/bin", "/usr/lib/cni"])
        XCTAssertThrowsError(try CNIEnvironment(complete.merging(["CNI_ARGS": "IgnoreUnknown=1;web"]) { $1 }))
    }

    func testEachVerbNamesTheVariableItMisses() {
        let required: [String: [String]] = [
            "ADD": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
            "CHECK": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
            "DEL": ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            "GC": ["CNI_PATH"], "STATUS": ["CNI_PATH"],
        ]
        for (command, variables) in required {
            for variable in variables {
                var environment = complete
                environment["CNI_COMMAND"] = command
                environment[variable] = nil
                XCTAssertThrowsError(try CNIEnvironment(environment)) { error in
                    let error = error as! CNIError
                    XCTAssertEqual(error.code, .invalidEnvironment)
                    XCTAssertTrue(error.msg.contains(variable), "\(command) without \(variable): \(error.msg)")
                }
            }
        }
        var del = complete
        del["CNI_COMMAND"] = "DEL"
        del["CNI_NETNS"] = nil
        XCTAssertNoThrow(try CNIEnvironment(del), "DEL works without a netns")
        XCTAssertNoThrow(try CNIEnvironment(["CNI_COMMAND": "VERSION"]))
    }

    func testRejectsBadNamesAndCommands() {
        let bad: [[String: String]] = [
            ["CNI_IFNAME": "sixteen-chars-xx"], ["CNI_IFNAME": "."], ["CNI_IFNAME": "a b"], ["CNI_IFNAME": "a:b"],
            ["CNI_CONTAINERID": "_x"], ["CNI_CONTAINERID": "a/b"], ["CNI_CONTAINERID": String(repeating: "a", count: 128)],
            ["CNI_COMMAND": "add"], ["CNI_ARGS": "novalue"],
        ]
        for change in bad {
            XCTAssertThrowsError(try CNIEnvironment(complete.merging(change) { $1 }), "\(change)") {
                XCTAssertEqual(($0 as! CNIError).code, .invalidEnvironment)
            }
        }
        XCTAssertNoThrow(try CNIEnvironment(complete.merging(["CNI_IFNAME": "fifteen-chars-x"]) { $1 }))
    }
}

final class NetworkConfigTests: XCTestCase {
    private func parse(_ text: String) throws -> NetworkConfig { try NetworkConfig(parsing: Array(text.utf8)) }

    private func code(_ text: String) -> CNIError.Code? {
        do { _ = try parse(text); return nil } catch { return (error as? CNIError)?.code }
    }

    func testVersionsAndErrorCodes() throws {
        XCTAssertEqual(try parse(#"{"cniVersion":"0.3.1","name":"n","type":"swiftpath"}"#).cniVersion, .v0_3_1)
        XCTAssertEqual(code(#"{"cniVersion":"0.2.0","name":"n","type":"swiftpath"}"#), .incompatibleVersion)
        XCTAssertEqual(code(#"{"name":"n","type":"swiftpath"}"#), .incompatibleVersion)
        XCTAssertEqual(code(#"{"cniVersion":"1.1.0","name":"n""#), .decodingFailure)
        XCTAssertEqual(code(""), .decodingFailure)
        XCTAssertEqual(code(#"{"cniVersion":"1.1.0","type":"swiftpath"}"#), .invalidNetworkConfig)
        XCTAssertEqual(code(#"{"cniVersion":"1.1.0","name":"a b","type":"swiftpath"}"#), .invalidNetworkConfig)
        XCTAssertEqual(code(#"{"cniVersion":"1.1.0","name":"n","type":"swiftpath","ipam":[]}"#), .invalidNetworkConfig)
        XCTAssertNil(code(#"{"cniVersion":"1.1.0","name":"n","type":"swiftpath","future":{"x":1}}"#), "unknown keys are ignored")
    }

    func testBadValueNamesItsKeyPath() {
        let text = #"{"cniVersion":"1.1.0","name":"n","type":"swiftpath","prevResult":{"ips":[{"address":"nope"}]}}"#
        XCTAssertThrowsError(try parse(text)) { error in
            let error = error as! CNIError
            XCTAssertEqual(error.code, .invalidNetworkConfig)
            XCTAssertTrue(error.msg.contains("ips[0].address"), error.msg)
        }
    }

    func testGCAttachmentsUnderBothKeys() throws {
        let new = try parse(#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}]}"#)
        XCTAssertEqual(new.validAttachments, [.init(containerID: "a", ifname: "eth0")])
        let old = try parse(#"{"cniVersion":"1.1.0","name":"n","type":"t","cni.dev/attachments":[{"containerID":"b","ifname":"net1"}]}"#)
        XCTAssertEqual(old.validAttachments, [.init(containerID: "b", ifname: "net1")])
    }

    func testIPAMIsKeptAsGiven() throws {
        let config = try parse(#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/24"}]]}}"#)
        XCTAssertEqual(config.ipamType, "host-local")
    }
}

final class ResultTests: XCTestCase {
    private let result = CNIResult(
        interfaces: [.init(name: "spath0", mac: "0a:00:00:00:00:01"),
                     .init(name: "eth0", mac: "0a:00:00:00:00:02", mtu: 1500, sandbox: "/run/netns/p")],
        ips: [.init(address: IPPrefix("10.0.0.2/32")!, gateway: IPAddress("10.0.0.1"), interface: 1),
              .init(address: IPPrefix("fd00::2/128")!, gateway: IPAddress("fd00::1"), interface: 1)],
        routes: [.init(dst: IPPrefix("0.0.0.0/0")!, gw: IPAddress("10.0.0.1"))])

    private func json(_ version: CNIVersion) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(result.encoded(as: version))) as! [String: Any]
    }

    func testPre1ResultsCarryIPVersion() throws {
        for version in [CNIVersion.v0_3_0, .v0_3_1, .v0_4_0] {
            let ips = try json(version)["ips"] as! [[String: Any]]
            XCTAssertEqual(ips.map { $0["version"] as? String }, ["4", "6"], "\(version)")
        }
        for version in [CNIVersion.v1_0_0, .v1_1_0] {
            let ips = try json(version)["ips"] as! [[String: Any]]
            XCTAssertTrue(ips.allSatisfy { $0["version"] == nil }, "\(version)")
        }
    }

    func testMTUIsOnlyIn1_1() throws {
        XCTAssertEqual(((try json(.v1_1_0)["interfaces"] as! [[String: Any]])[1]["mtu"]) as? Int, 1500)
        XCTAssertNil((try json(.v1_0_0)["interfaces"] as! [[String: Any]])[1]["mtu"])
    }

    func testRoundTripsThroughEveryVersion() throws {
        for version in CNIVersion.allCases {
            var expected = result
            if version < .v1_1_0 { expected.interfaces[1].mtu = nil }
            XCTAssertEqual(try CNIResult.decode(result.encoded(as: version), what: "result"), expected, "\(version)")
            XCTAssertEqual(try json(version)["cniVersion"] as? String, version.rawValue)
        }
    }

    func testErrorObject() throws {
        let error = CNIError(.invalidNetworkConfig, "invalid value for key \"mtu\"", details: "too small")
        let object = try JSONSerialization.jsonObject(with: Data(error.json(cniVersion: .v0_4_0))) as! [String: Any]
        XCTAssertEqual(object["code"] as? Int, 7)
        XCTAssertEqual(object["cniVersion"] as? String, "0.4.0")
        XCTAssertEqual(object["details"] as? String, "too small")
        let bare = try JSONSerialization.jsonObject(with: Data(CNIError(.ioFailure, "x").json(cniVersion: nil))) as! [String: Any]
        XCTAssertEqual(bare["cniVersion"] as? String, "1.1.0")
        XCTAssertNil(bare["details"])
    }
}
