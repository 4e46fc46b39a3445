// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// DEL, CHECK, GC and STATUS on real attachments.
final class LifecycleTests: XCTestCase {
    func testCheckPassesThenFindsARemovedRoute() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("chk")
        for ipam in [IPAMKind.builtin, .hostLocal] {
            let containerID = "ctr-chk-\(ipam)"
            let result = try node.add(containerID, pod: pod, ipam: ipam)
            var config = node.config(ipam: ipam)
            config["prevResult"] = result.printed
            let passing = try node.cni("CHECK", containerID: containerID, netns: pod, config: config)
            XCTAssertEqual(passing.status, 0, "CHECK of a fresh attachment: \(passing.stdout)")

            XCTAssertEqual(try node.inPod(pod, "ip", "-6", "route", "del", "default").status, 0)
            let failing = try node.cni("CHECK", containerID: containerID, netns: pod, config: config)
            XCTAssertNotEqual(failing.status, 0)
            XCTAssertEqual(failing.errorCode, 105)
            XCTAssertTrue(failing.errorMessage.contains("::/0"), failing.errorMessage)

            let del = try node.cni("DEL", containerID: containerID, netns: pod, config: config)
            XCTAssertEqual(del.status, 0, del.stdout)
        }
    }

    /// The node's side too: CHECK looks each pod address up in the FIB and finds its host route gone.
    func testCheckFindsARemovedHostRoute() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("chkh")
        let result = try node.add("ctr-chkh", pod: pod)
        var config = node.config()
        config["prevResult"] = result.printed
        XCTAssertEqual(try node.cni("CHECK", containerID: "ctr-chkh", netns: pod, config: config).status, 0)

        let v6 = try XCTUnwrap(result.podAddresses.last)
        XCTAssertEqual(try runProcess(["ip", "-n", node.netns, "-6", "route", "del", v6 + "/128"]).status, 0)
        let failing = try node.cni("CHECK", containerID: "ctr-chkh", netns: pod, config: config)
        XCTAssertEqual(failing.errorCode, 105)
        XCTAssertTrue(failing.errorMessage.contains("host route \(v6)/128"), failing.errorMessage)
    }

    func testCheckOfUnknownContainerIsCode3() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("unk")
        var config = node.config()
        config["prevResult"] = ["cniVersion": "1.1.0", "ips": [["address": "10.123.0.9/32"]]]
        let outcome = try node.cni("CHECK", containerID: "nobody", netns: pod, config: config)
        XCTAssertEqual(outcome.errorCode, 3, outcome.stdout)
    }

    func testDelTwiceAndAfterNetnsIsGone() throws {
        let node = try TestNode(self)
        for ipam in [IPAMKind.builtin, .hostLocal] {
            let pod = try node.makePod("del-\(ipam)")
            _ = try node.add("ctr-del", pod: pod, ipam: ipam)
            let config = node.config(ipam: ipam)
            for round in 1...2 {
                let del = try node.cni("DEL", containerID: "ctr-del", netns: pod, config: config)
                XCTAssertEqual(del.status, 0, "DEL #\(round): \(del.stdout)")
                XCTAssertEqual(del.stdout, "", "DEL prints nothing on success")
            }
            XCTAssertEqual(try node.hostVeths(), [])
            XCTAssertEqual(try node.endpoints().count, 0)
            XCTAssertEqual(node.hostLocalReservations(), [])

            // Gone netns: ADD, delete the netns behind the runtime's back, DEL with and without CNI_NETNS.
            _ = try node.add("ctr-gone", pod: pod, ipam: ipam)
            try node.deletePod(pod)
            let del = try node.cni("DEL", containerID: "ctr-gone", netns: pod, config: config)
            XCTAssertEqual(del.status, 0, del.stdout)
            let again = try node.cni("DEL", containerID: "ctr-gone", netns: "", config: config)
            XCTAssertEqual(again.status, 0, again.stdout)
            XCTAssertEqual(try node.hostVeths(), [])
            XCTAssertEqual(try node.endpoints().count, 0)
            XCTAssertEqual(node.hostLocalReservations(), [])
        }
        // The built-in allocator's leases went with the endpoints: the next ADD gets the first address again.
        let fresh = try node.makePod("fresh")
        XCTAssertEqual(try node.add("ctr-fresh", pod: fresh).podAddresses.first?.hasPrefix("10.123.0."), true)
    }

    func testAddOfExistingInterfaceFailsAndLeavesItAlone() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("dup")
        XCTAssertEqual(try node.inPod(pod, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0").status, 0)
        XCTAssertEqual(try node.inPod(pod, "ip", "addr", "add", "198.51.100.7/24", "dev", "eth0").status, 0)
        let before = try node.inPod(pod, "ip", "-o", "addr", "show", "eth0").stdout

        let outcome = try node.cni("ADD", containerID: "ctr-dup", netns: pod, config: node.config())
        XCTAssertEqual(outcome.errorCode, 101, outcome.stdout)
        XCTAssertEqual(try node.inPod(pod, "ip", "-o", "addr", "show", "eth0").stdout, before)
        XCTAssertEqual(try node.hostVeths(), [])
        XCTAssertEqual(try node.endpoints().count, 0)

        // The same for a second ADD of a wired attachment: the first stays as it was.
        let second = try node.makePod("dup2")
        let first = try node.add("ctr-twice", pod: second)
        let repeated = try node.cni("ADD", containerID: "ctr-twice", netns: second, config: node.config())
        XCTAssertEqual(repeated.errorCode, 101, repeated.stdout)
        XCTAssertEqual(try node.endpoints().map(\.addresses).first?.count, 2)
        let ping = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", "ping", "-c1", "-W2", first.podAddresses[0]])
        XCTAssertEqual(ping.status, 0, "the first attachment still works")
    }

    func testGCRemovesStaleAttachmentsAndKeepsValidOnes() throws {
        let node = try TestNode(self)
        for ipam in [IPAMKind.builtin, .hostLocal] {
            let keep = try node.makePod("keep-\(ipam)"), drop = try node.makePod("drop-\(ipam)")
            let kept = try node.add("ctr-keep", pod: keep, ipam: ipam)
            _ = try node.add("ctr-drop", pod: drop, ipam: ipam)
            XCTAssertEqual(try node.hostVeths().count, 2)

            var config = node.config(ipam: ipam)
            config["cni.dev/valid-attachments"] = [["containerID": "ctr-keep", "ifname": "eth0"]]
            let gc = try node.cni("GC", config: config)
            XCTAssertEqual(gc.status, 0, gc.stdout)

            XCTAssertEqual(try node.hostVeths().count, 1)
            XCTAssertEqual(try node.endpoints().map(\.containerID), ["ctr-keep"])
            XCTAssertEqual(try node.inPod(drop, "ip", "link", "show", "eth0").status, 1, "the stale pod lost its interface")
            let ping = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", "ping", "-c1", "-W2", kept.podAddresses[0]])
            XCTAssertEqual(ping.status, 0, "the valid attachment still works")
            if ipam == .hostLocal {
                XCTAssertEqual(Set(node.hostLocalReservations()), Set(kept.podAddresses))
            }
            let del = try node.cni("DEL", containerID: "ctr-keep", netns: keep, config: node.config(ipam: ipam))
            XCTAssertEqual(del.status, 0)
        }
    }

    func testGCReleasesWhatACrashedPodLeftBehind() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("orphan")
        _ = try node.add("ctr-orphan", pod: pod)
        XCTAssertEqual(try node.leaseCount(), 2)
        // The pod's netns vanishes without a DEL: the kernel takes the veth, the store keeps the rest.
        try node.deletePod(pod)
        XCTAssertEqual(try node.endpoints().count, 1)

        var config = node.config()
        config["cni.dev/valid-attachments"] = [[String: String]]()
        let gc = try node.cni("GC", config: config)
        XCTAssertEqual(gc.status, 0, gc.stdout)
        XCTAssertEqual(try node.endpoints().count, 0)
        XCTAssertEqual(try node.leaseCount(), 0)
    }

    func testGCWithoutTheAttachmentListIsRefused() throws {
        let node = try TestNode(self)
        let pod = try node.makePod("gclist")
        _ = try node.add("ctr-gclist", pod: pod)
        let gc = try node.cni("GC", config: node.config())
        XCTAssertEqual(gc.errorCode, 7, gc.stdout)
        XCTAssertTrue(gc.errorMessage.contains("cni.dev/valid-attachments"))
        XCTAssertEqual(try node.endpoints().count, 1, "nothing was collected")
    }

    func testStatus() throws {
        let node = try TestNode(self)
        let ready = try node.cni("STATUS", config: node.config())
        XCTAssertEqual(ready.status, 0, ready.stdout)
        let readyHostLocal = try node.cni("STATUS", config: node.config(ipam: .hostLocal))
        XCTAssertEqual(readyHostLocal.status, 0, readyHostLocal.stdout)

        var missing = node.config()
        missing["ipam"] = ["type": "no-such-ipam"]
        let outcome = try node.cni("STATUS", config: missing)
        XCTAssertEqual(outcome.errorCode, 50, outcome.stdout)

        let tooOld = try node.cni("STATUS", config: node.config(version: "1.0.0"))
        XCTAssertEqual(tooOld.errorCode, 1, tooOld.stdout)
    }

    func testVersion() throws {
        let node = try TestNode(self)
        let outcome = try node.cni("VERSION", rawConfig: #"{"cniVersion":"0.4.0"}"#)
        XCTAssertEqual(outcome.status, 0)
        let answer = try outcome.json()
        XCTAssertEqual(answer["cniVersion"] as? String, "0.4.0")
        XCTAssertEqual(answer["supportedVersions"] as? [String], ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    }
}
