// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// Where the socket hooks apply: per pod (the runtime's cgroupPath), and the node's own processes.
final class SocketLBScopeTests: XCTestCase {
    private func startBackend(_ pod: String) throws -> Process {
        let server = try startServer(in: pod, "lbserver.py", ["8080", "be1"])
        addTeardownBlock { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        return server
    }

    /// Whether a connect from `netns`, in `cgroup`, to the VIP reaches the backend.
    private func balanced(netns: String, cgroup: String) throws -> Bool {
        let command = "echo $$ > \(cgroup)/cgroup.procs && exec nsenter --net=\(netns) python3 \(testScript("lbclient.py")) errno 10.96.0.30 80"
        let result = try runProcess(["sh", "-c", command])
        let answer = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return answer?["errno"] is NSNull
    }

    func testPerPodHooksFollowThePodsCgroup() throws {
        let node = try TestNode(self)
        var cgroups: [String: String] = [:]
        for name in ["be1", "client", "other"] {
            cgroups[name] = "\(node.cgroup)/\(name)"
            try FileManager.default.createDirectory(atPath: cgroups[name]!, withIntermediateDirectories: false)
        }
        func podConfig(_ name: String) -> [String: Any] {
            // The runtime passes cgroupPath relative to the hierarchy's root, as kubelet does.
            node.config(extra: ["socketLB": ["scope": "pod"],
                                "runtimeConfig": ["cgroupPath": String(cgroups[name]!.dropFirst(cgroup2Mount.count))]])
        }
        let backend = try node.makePod("be1"), client = try node.makePod("client")
        let added = try node.cni("ADD", containerID: "ctr-be1", netns: backend, config: podConfig("be1"))
        XCTAssertEqual(added.status, 0, added.stdout)
        XCTAssertEqual(try node.cni("ADD", containerID: "ctr-client", netns: client, config: podConfig("client")).status, 0)
        _ = try startBackend(backend)
        let address = try XCTUnwrap(added.result().podAddresses.first)
        XCTAssertEqual(try runProcess([pluginBinary, "service", "set", "10.96.0.30:80/tcp", address + ":8080", "--root", node.storeRoot]).status, 0)

        XCTAssertTrue(try balanced(netns: client, cgroup: cgroups["client"]!), "the client pod's cgroup has the hooks")
        XCTAssertFalse(try balanced(netns: client, cgroup: cgroups["other"]!), "a cgroup without them is not balanced")
        XCTAssertFalse(try balanced(netns: client, cgroup: node.cgroup), "nor is the parent: hooks are inherited downwards only")

        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-client", netns: client, config: podConfig("client")).status, 0)
        XCTAssertFalse(try balanced(netns: client, cgroup: cgroups["client"]!), "DEL took the pod's hooks away")

        let missing = try node.cni("ADD", containerID: "ctr-x", netns: try node.makePod("x"),
                                   config: node.config(extra: ["socketLB": ["scope": "pod"]]))
        XCTAssertEqual(missing.errorCode, 7)
        XCTAssertTrue(missing.errorMessage.contains("runtimeConfig.cgroupPath"), missing.errorMessage)
    }

    func testNodeProcessesAreBalancedUnlessTurnedOff() throws {
        let node = try TestNode(self)
        let backend = try node.makePod("be1"), client = try node.makePod("client")
        for hostNamespace in [true, false] {
            let config = node.config(extra: ["socketLB": ["cgroupRoot": node.cgroup, "hostNamespace": hostNamespace]])
            for (id, pod) in [("ctr-be1", backend), ("ctr-client", client)] {
                _ = try node.cni("DEL", containerID: id, netns: pod, config: config)
                XCTAssertEqual(try node.cni("ADD", containerID: id, netns: pod, config: config).status, 0)
            }
            let address = try XCTUnwrap((node.endpoints().first { $0.containerID == "ctr-be1" }?.addresses)?.first)
            let server = try startBackend(backend)
            XCTAssertEqual(try runProcess([pluginBinary, "service", "set", "10.96.0.30:80/tcp",
                                           String(address.split(separator: "/")[0]) + ":8080", "--root", node.storeRoot]).status, 0)
            XCTAssertTrue(try balanced(netns: client, cgroup: node.cgroup), "pods are balanced either way")
            XCTAssertEqual(try balanced(netns: "/run/netns/\(node.netns)", cgroup: node.cgroup), hostNamespace,
                           "the node's own processes, with hostNamespace \(hostNamespace)")
            server.terminate()
            server.waitUntilExit()
        }
    }
}
