// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// Pods wired by the plugin talk to each other and to their node, over IPv4 and IPv6.
final class ConnectivityTests: XCTestCase {
    func testTwoPodsTalkWithBuiltinAllocator() throws {
        try checkTwoPodsTalk(ipam: .builtin)
    }

    func testTwoPodsTalkWithHostLocal() throws {
        try checkTwoPodsTalk(ipam: .hostLocal)
    }

    private func checkTwoPodsTalk(ipam: IPAMKind) throws {
        let node = try TestNode(self)
        let podA = try node.makePod("a"), podB = try node.makePod("b")
        let resultA = try node.add("ctr-a", pod: podA, ipam: ipam)
        let resultB = try node.add("ctr-b", pod: podB, ipam: ipam)
        let addressesA = resultA.podAddresses, addressesB = resultB.podAddresses
        XCTAssertEqual(addressesA.count, 2, "one IPv4 and one IPv6 address: \(resultA)")
        XCTAssertEqual(addressesB.count, 2)
        XCTAssertTrue(Set(addressesA).isDisjoint(with: addressesB))

        for (from, to) in [(podA, addressesB), (podB, addressesA)] {
            for address in to {
                let ping = try node.inPod(from, "ping", "-c", "1", "-W", "2", address)
                XCTAssertEqual(ping.status, 0, "pod \(from) -> \(address): \(ping.stdout)")
            }
        }
        for address in addressesA + addressesB {
            let ping = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", "ping", "-c", "1", "-W", "2", address])
            XCTAssertEqual(ping.status, 0, "node -> \(address): \(ping.stdout)")
        }
        for (pod, nodeAddress) in [(podA, "192.0.2.1"), (podA, "2001:db8::1"), (podB, "192.0.2.1")] {
            let ping = try node.inPod(pod, "ping", "-c", "1", "-W", "2", nodeAddress)
            XCTAssertEqual(ping.status, 0, "pod -> node \(nodeAddress): \(ping.stdout)")
        }

        // The pod never resolves its gateway: the entry is permanent and points at the host end.
        let neighbours = try node.inPod(podA, "ip", "neigh", "show", "dev", "eth0").stdout
        XCTAssertTrue(neighbours.contains("PERMANENT"), neighbours)
        let hostEnd = resultA.interfaces.first?.mac
        XCTAssertNotNil(hostEnd)
        XCTAssertTrue(neighbours.contains(hostEnd ?? "-"), "gateway resolves to the host end \(hostEnd ?? "")")

        let endpoints = try node.endpoints()
        XCTAssertEqual(Set(endpoints.map(\.containerID)), ["ctr-a", "ctr-b"])
    }

    func testResultShapeFollowsTheConfigVersion() throws {
        let node = try TestNode(self)
        for (index, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].enumerated() {
            let pod = try node.makePod("v\(index)")
            let result = try node.add("ctr-v\(index)", pod: pod, version: version)
            XCTAssertEqual(result.cniVersion, version)
            let ips = result.ips
            XCTAssertEqual(ips.count, 2)
            if version.hasPrefix("0.") {
                XCTAssertEqual(Set(ips.compactMap(\.version)), ["4", "6"], "\(version) results carry ips[].version")
            } else {
                XCTAssertTrue(ips.allSatisfy { $0.version == nil }, "\(version) results have no ips[].version")
            }
            let interfaces = result.interfaces
            XCTAssertEqual(interfaces.count, 2)
            XCTAssertEqual(interfaces.last?.sandbox, pod)
            XCTAssertEqual(interfaces.last?.mtu != nil, version == "1.1.0", "mtu is a 1.1.0 field")
            XCTAssertTrue(ips.allSatisfy { $0.interface == 1 })
        }
    }

    func testChainedPrevResultIsExtended() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("chain")
        let previous: [String: Any] = [
            "cniVersion": "1.1.0",
            "interfaces": [["name": "earlier0"]],
            "ips": [["address": "192.168.77.2/24", "interface": 0]],
            "dns": ["nameservers": ["192.0.2.53"]],
        ]
        let outcome = try node.cni("ADD", containerID: "ctr-chain", netns: pod,
                                   config: node.config(extra: ["prevResult": previous]))
        XCTAssertEqual(outcome.status, 0, outcome.stdout)
        let result = try outcome.json()
        let interfaces = result["interfaces"] as? [[String: Any]] ?? []
        XCTAssertEqual(interfaces.map { $0["name"] as? String }.first, "earlier0")
        XCTAssertEqual(interfaces.count, 3)
        let ips = result["ips"] as? [[String: Any]] ?? []
        XCTAssertEqual(ips.first?["address"] as? String, "192.168.77.2/24")
        XCTAssertEqual(ips.dropFirst().compactMap { $0["interface"] as? Int }, [2, 2])
        XCTAssertEqual((result["dns"] as? [String: Any])?["nameservers"] as? [String], ["192.0.2.53"])
    }

    func testConfiguredMTUReachesBothEnds() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("mtu")
        let outcome = try node.cni("ADD", containerID: "ctr-mtu", netns: pod, config: node.config(extra: ["mtu": 1400]))
        XCTAssertEqual(outcome.status, 0, outcome.stdout)
        XCTAssertTrue(try node.inPod(pod, "ip", "link", "show", "eth0").stdout.contains("mtu 1400"))
        let host = try node.hostVeths().first ?? "-"
        XCTAssertTrue(try node.exec("ip", "link", "show", host).contains("mtu 1400"))
    }

    /// The conflists in cni-conf/ work as shipped (with this node's store and IPAM folder).
    func testShippedConfigsWork() throws {
        let node = try TestNode(self)
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../cni-conf")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".conflist") }.sorted()
        XCTAssertEqual(files.count, 2, "\(files)")
        for (index, file) in files.enumerated() {
            let conflist = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent(file))) as! [String: Any]
            var entry = (conflist["plugins"] as! [[String: Any]])[0]
            entry["cniVersion"] = conflist["cniVersion"]
            entry["name"] = node.network
            entry["bpffsRoot"] = node.storeRoot
            entry["logFile"] = "/tmp/\(node.prefix).log"
            entry["socketLB"] = ["cgroupRoot": node.cgroup]   // never the host's root cgroup
            if var ipam = entry["ipam"] as? [String: Any], ipam["type"] as? String == "host-local" {
                ipam["dataDir"] = node.ipamDataDir
                entry["ipam"] = ipam
            }
            let pod = try node.makePod("shipped\(index)")
            let add = try node.cni("ADD", containerID: "ctr-\(index)", netns: pod, config: entry)
            XCTAssertEqual(add.status, 0, "\(file): \(add.stdout)")
            XCTAssertEqual(try add.result().podAddresses.count, 2, "\(file) is dual stack")
            for address in try add.result().podAddresses {
                let ping = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", "ping", "-c1", "-W2", address])
                XCTAssertEqual(ping.status, 0, "\(file): node -> \(address)")
            }
            XCTAssertEqual(try node.cni("DEL", containerID: "ctr-\(index)", netns: pod, config: entry).status, 0)
        }
    }
}
