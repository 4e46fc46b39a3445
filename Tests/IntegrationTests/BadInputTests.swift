// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// Bad input gets the spec's error code and changes nothing on the node.
final class BadInputTests: XCTestCase {
    func testMalformedJSONIsCode6() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("bad")
        for text in ["{not json", "", "[1, 2", #"{"cniVersion": "1.1.0", "name": "x", "#] {
            let outcome = try node.cni("ADD", containerID: "ctr-bad", netns: pod, rawConfig: text)
            XCTAssertEqual(outcome.errorCode, 6, "\(text): \(outcome.stdout)")
            XCTAssertNotEqual(outcome.status, 0)
        }
        try assertNothingChanged(node)
    }

    func testMissingOrInvalidEnvironmentIsCode4NamingTheVariable() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("env")
        let cases: [(String, [String: String?], String)] = [
            ("CNI_CONTAINERID", ["CNI_CONTAINERID": nil], ""),
            ("CNI_NETNS", ["CNI_NETNS": nil], "ctr"),
            ("CNI_IFNAME", ["CNI_IFNAME": nil], "ctr"),
            ("CNI_PATH", ["CNI_PATH": nil], "ctr"),
            ("CNI_IFNAME", ["CNI_IFNAME": "this-name-is-far-too-long"], "ctr"),
            ("CNI_IFNAME", ["CNI_IFNAME": "eth/0"], "ctr"),
            ("CNI_CONTAINERID", [:], "-leading-dash"),
            ("CNI_COMMAND", ["CNI_COMMAND": "FROB"], "ctr"),
            ("CNI_COMMAND", ["CNI_COMMAND": ""], "ctr"),
            ("CNI_NETNS", ["CNI_NETNS": "/tmp"], "ctr"),
            ("CNI_NETNS", ["CNI_NETNS": "/proc/self/ns/uts"], "ctr"),
            ("CNI_NETNS", ["CNI_NETNS": "/proc/self/status"], "ctr"),
            ("CNI_NETNS", ["CNI_NETNS": "/proc/self/ns/net"], "ctr"),
            ("CNI_IFNAME", ["CNI_IFNAME": "%d"], "ctr"),
            ("CNI_IFNAME", ["CNI_IFNAME": "eth%d"], "ctr"),
        ]
        for (variable, environment, containerID) in cases {
            var env = environment
            if env["CNI_NETNS"] == nil, !environment.keys.contains("CNI_NETNS") { env["CNI_NETNS"] = pod }
            let outcome = try node.cni("ADD", containerID: containerID, netns: pod, config: node.config(), environment: env)
            XCTAssertEqual(outcome.errorCode, 4, "\(variable): \(outcome.stdout)")
            XCTAssertTrue(outcome.errorMessage.contains(variable), "the error names \(variable): \(outcome.errorMessage)")
        }
        try assertNothingChanged(node)
    }

    func testUnknownVersionIsCode1() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("ver")
        for version in ["0.2.0", "9.9.9", nil] as [String?] {
            var config = node.config()
            config["cniVersion"] = version
            let outcome = try node.cni("ADD", containerID: "ctr-ver", netns: pod, config: config)
            XCTAssertEqual(outcome.errorCode, 1, "\(version ?? "no version"): \(outcome.stdout)")
        }
        let check = try node.cni("CHECK", containerID: "ctr-ver", netns: pod, config: node.config(version: "0.3.1"))
        XCTAssertEqual(check.errorCode, 1, "CHECK needs 0.4.0: \(check.stdout)")
        try assertNothingChanged(node)
    }

    func testInvalidConfigIsCode7NamingTheKey() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("cfg")
        let builtinRanges = { (range: [String: Any]) -> [String: Any] in ["type": "swiftpath", "ranges": [range]] }
        let cases: [(String, [String: Any])] = [
            ("mtu", ["mtu": 10]),
            ("mtu", ["mtu": "big"]),
            ("name", ["name": "bad name!"]),
            ("ipam.type", ["ipam": ["type": "no-such-ipam"]]),
            ("ipam.type", ["ipam": ["ranges": []]]),
            ("ipam.ranges", ["ipam": ["type": "swiftpath", "ranges": []]]),
            ("ipam.ranges[0].subnet", ["ipam": builtinRanges(["subnet": "10.1.2.300/24"])]),
            ("ipam.ranges[0].subnet", ["ipam": builtinRanges(["subnet": "10.1.2.0/31"])]),
            ("ipam.ranges[0].rangeStart", ["ipam": builtinRanges(["subnet": "10.1.2.0/24", "rangeStart": "10.9.9.9"])]),
            ("ipam.ranges[0].rangeEnd", ["ipam": builtinRanges(["subnet": "10.1.2.0/24", "rangeEnd": "10.1.2.255"])]),
            ("bpffsRoot", ["bpffsRoot": "relative/path"]),
            ("ipam", ["ipam": "host-local"]),
            ("clusterCIDRs", ["ipMasq": true]),
            ("devices", ["devices": ["no/such"]]),
            ("devices", ["devices": ["nosuchdevice0"]]),
            ("attachMode", ["attachMode": "xdp"]),
            ("name", ["name": String(repeating: "n", count: 64)]),
            ("ipam.routes[0].gw", ["ipam": ["type": "swiftpath", "ranges": [["subnet": "10.1.2.0/24"]],
                                            "routes": [["dst": "0.0.0.0/0", "gw": "fd00::1"]]]]),
            ("ipam.type", ["ipam": ["type": "."]]),
            ("ipam.type", ["ipam": ["type": "host-local\u{0}x"]]),
            ("ipam.ranges[0].subnet", ["ipam": builtinRanges(["subnet": "10.0.0.0\u{0}/24"])]),
            ("socketLB.cgroupRoot", ["socketLB": ["cgroupRoot": "\(node.cgroup)/cgroup.procs"]]),
            ("bpffsRoot", ["bpffsRoot": "/tmp/not-bpffs"]),
            ("logFile", ["logFile": "/tmp"]),
            ("runtimeConfig.portMappings", ["runtimeConfig": ["portMappings": "8080:80"]]),
            ("runtimeConfig.portMappings[0].hostPort", ["runtimeConfig": ["portMappings": [["containerPort": 80]]]]),
            ("runtimeConfig.portMappings[0].containerPort", ["runtimeConfig": ["portMappings": [["hostPort": 8080, "containerPort": 70000]]]]),
            ("runtimeConfig.portMappings[0].hostIP", ["runtimeConfig": ["portMappings": [["hostPort": 8080, "containerPort": 80, "hostIP": "nope"]]]]),
            ("runtimeConfig.portMappings[1].hostPort", ["runtimeConfig": ["portMappings": [["hostPort": 8080, "containerPort": 80],
                                                                                          ["hostPort": 8080, "containerPort": 81, "protocol": "TCP"]]]]),
        ]
        for (key, change) in cases {
            var config = node.config()
            for (field, value) in change { config[field] = value }
            let outcome = try node.cni("ADD", containerID: "ctr-cfg", netns: pod, config: config)
            XCTAssertEqual(outcome.errorCode, 7, "\(key): \(outcome.stdout)")
            XCTAssertTrue(outcome.errorMessage.contains("\"\(key)\""), "the error names \(key): \(outcome.errorMessage)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: node.storeRoot), "not even the store was created")
        // Unknown keys are ignored, as the CNI conventions expect.
        let tolerant = try node.cni("ADD", containerID: "ctr-cfg", netns: pod, config: node.config(extra: ["someFutureKey": [1, 2]]))
        XCTAssertEqual(tolerant.status, 0, tolerant.stdout)
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-cfg", netns: pod, config: node.config()).status, 0)
        try assertNothingChanged(node)
    }

    /// A host port the pod cannot have is refused naming the mapping, and what the ADD had done is undone.
    func testUnofferableHostPortsChangeNothing() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("hp")
        let sctp = try node.cni("ADD", containerID: "ctr-hp", netns: pod,
                                config: node.config(extra: ["runtimeConfig": ["portMappings": [["hostPort": 38412, "containerPort": 38412, "protocol": "sctp"]]]]))
        XCTAssertEqual(sctp.errorCode, 2, sctp.stdout)
        XCTAssertTrue(sctp.errorMessage.contains("\"runtimeConfig.portMappings[0].protocol\""), sctp.errorMessage)
        // The pod's family is known once its addresses are: the ADD gets that far, then rolls back.
        let family = try node.cni("ADD", containerID: "ctr-hp", netns: pod,
                                  config: node.config(extra: ["ipam": ["type": "swiftpath", "ranges": [["subnet": node.podRanges.v4]]],
                                                              "runtimeConfig": ["portMappings": [["hostPort": 8080, "containerPort": 80, "hostIP": "2001:db8::1"]]]]))
        XCTAssertEqual(family.errorCode, 7, family.stdout)
        XCTAssertTrue(family.errorMessage.contains("\"runtimeConfig.portMappings[0].hostIP\""), family.errorMessage)
        try assertNothingChanged(node)
        let services = try runProcess([pluginBinary, "service", "list", "--root", node.storeRoot, "-o", "json"])
        XCTAssertEqual(services.stdout.filter { !$0.isWhitespace }, "[]", services.stdout)
    }

    /// Nothing that can block is opened: a FIFO as CNI_NETNS or as the log file answers at once.
    func testFIFOsNeverHang() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("fifo")
        let fifo = "/tmp/\(node.prefix)-fifo"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        defer { unlink(fifo) }
        let add = try node.cni("ADD", containerID: "ctr-fifo", netns: fifo, config: node.config())
        XCTAssertEqual(add.errorCode, 4, add.stdout)
        XCTAssertEqual(try node.cni("ADD", containerID: "ctr-fifo", netns: pod, config: node.config(extra: ["logFile": fifo])).errorCode, 7)
        _ = try node.add("ctr-fifo", pod: pod)
        let del = try node.cni("DEL", containerID: "ctr-fifo", netns: pod, config: node.config(extra: ["logFile": fifo]))
        XCTAssertEqual(del.status, 0, "DEL with a FIFO as its log file: \(del.stdout)")
        try assertNothingChanged(node)
    }

    /// A config fixed after its pod started (here an MTU ADD would refuse) still tears the pod down.
    func testDelCleansUpWhateverElseIsWrongWithTheConfig() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("fix")
        _ = try node.add("ctr-fix", pod: pod)
        let broken = node.config(extra: ["mtu": 10])
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-fix", netns: pod, config: broken).status, 0)
        try assertNothingChanged(node)
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-fix", netns: pod, config: broken).errorCode, 7,
                       "with nothing to clean up, the config error is reported")
    }

    /// CHECK, GC and STATUS look only: a store root that did not exist still does not.
    func testReadOnlyVerbsCreateNoStore() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("ro")
        var config = node.config()
        config["prevResult"] = ["cniVersion": "1.1.0", "ips": [["address": "10.123.0.9/32"]]]
        config["cni.dev/valid-attachments"] = [[String: String]]()
        XCTAssertEqual(try node.cni("CHECK", containerID: "ctr-ro", netns: pod, config: config).errorCode, 3)
        XCTAssertEqual(try node.cni("GC", config: config).status, 0)
        XCTAssertEqual(try node.cni("STATUS", config: config).status, 0)
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-ro", netns: pod, config: config).status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: node.storeRoot))
    }

    /// host-local's own error codes (999) are swiftpath's IPAM failure, 102; the spec's pass through.
    func testDelegatedIPAMErrorsBecomeCode102() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("hl")
        let config = node.config(extra: ["ipam": ["type": "host-local", "dataDir": node.ipamDataDir,
                                                  "ranges": [[["subnet": "10.124.0.0/30", "rangeStart": "10.124.0.2", "rangeEnd": "10.124.0.2"]]]]])
        let first = try node.makePod("hl1")
        XCTAssertEqual(try node.cni("ADD", containerID: "ctr-hl1", netns: first, config: config).status, 0)
        let exhausted = try node.cni("ADD", containerID: "ctr-hl2", netns: pod, config: config)
        XCTAssertEqual(exhausted.errorCode, 102, exhausted.stdout)
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-hl1", netns: first, config: config).status, 0)
        try assertNothingChanged(node)
    }

    /// More addresses than a record holds (and so than the datapath is told, and GC keeps) is
    /// refused, with every lease released.
    func testMoreAddressesThanARecordHoldsAreRefused() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("many")
        let ranges = (1...5).map { [["subnet": "10.127.\($0).0/24"]] }
        let config = node.config(extra: ["ipam": ["type": "host-local", "dataDir": node.ipamDataDir, "ranges": ranges]])
        let outcome = try node.cni("ADD", containerID: "ctr-many", netns: pod, config: config)
        XCTAssertEqual(outcome.errorCode, 102, outcome.stdout)
        XCTAssertTrue(outcome.errorMessage.contains("at most 4"), outcome.errorMessage)
        XCTAssertEqual(node.hostLocalReservations(), [], "every lease released")
        try assertNothingChanged(node)
    }

    func testExhaustedRangeRollsBackTheOtherFamily() throws {
        let node = try TestNode(self)
        let ranges: [[String: Any]] = [["subnet": "10.125.0.0/30"], ["subnet": "fd00:125::/64"]]
        let config = node.config(extra: ["ipam": ["type": "swiftpath", "ranges": ranges]])
        // A /30 holds network, gateway, one pod address and broadcast.
        let first = try node.makePod("ex1"), second = try node.makePod("ex2")
        XCTAssertEqual(try node.cni("ADD", containerID: "ctr-ex1", netns: first, config: config).status, 0)
        let outcome = try node.cni("ADD", containerID: "ctr-ex2", netns: second, config: config)
        XCTAssertEqual(outcome.errorCode, 103, outcome.stdout)
        XCTAssertEqual(try node.leaseCount(), 2, "only the first pod's two leases remain")
        XCTAssertEqual(try node.hostVeths().count, 1)
        XCTAssertEqual(try node.inPod(second, "ip", "link", "show", "eth0").status, 1)
    }
}
