// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// What the plugin hands the programs it runs, and what it opens on the runtime's word: a
/// delegated IPAM plugin inherits no netlink socket or pipe of the plugin's, one that hangs is
/// killed at its deadline (with what it started), a symlink at the log path is not written
/// through, and a cgroupPath cannot climb out of the cgroup hierarchy.
final class ChildProcessTests: XCTestCase {
    private var node: TestNode!
    /// A CNI_PATH folder holding the test's IPAM plugin, and where that plugin writes what it saw.
    private var folder = ""

    override func setUpWithError() throws {
        node = try TestNode(self)
        folder = "/tmp/\(node.prefix)-ipam-plugin"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
        addTeardownBlock { [folder] in try? FileManager.default.removeItem(atPath: folder) }
        // ADD: records its open descriptors (and, asked to hang, its pid and its child's, then
        // sleeps); answers one address. DEL: fails while asked to, else nothing to do.
        let script = """
            #!/usr/bin/python3
            import json, os, subprocess, sys, time
            state = "\(folder)"
            config = json.load(sys.stdin)
            if os.environ.get("CNI_COMMAND") == "ADD":
                fds = {}
                for fd in os.listdir("/proc/self/fd"):
                    try:
                        fds[fd] = os.readlink("/proc/self/fd/" + fd)
                    except OSError:
                        pass
                with open(state + "/fds.json", "w") as out:
                    json.dump(fds, out)
                if os.path.exists(state + "/hang"):
                    sleeper = subprocess.Popen(["sleep", "1000"])
                    with open(state + "/pids", "w") as out:
                        out.write("%d %d" % (os.getpid(), sleeper.pid))
                    time.sleep(1000)
                print(json.dumps({"cniVersion": config["cniVersion"], "ips": [{"address": "10.126.0.5/24", "gateway": "10.126.0.1"}]}))
            elif os.environ.get("CNI_COMMAND") == "DEL" and os.path.exists(state + "/fail-del"):
                print(json.dumps({"cniVersion": config["cniVersion"], "code": 11, "msg": "the IPAM store is away"}))
                sys.exit(1)

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: "\(folder)/sptest-ipam"))
        chmod("\(folder)/sptest-ipam", 0o755)
        // The plugin as a runtime starts it, with stdin, stdout and stderr only (the test process
        // has more open, which a spawned child would inherit).
        let runtime = """
            #!/usr/bin/python3
            import os, sys
            os.closerange(3, 1 << 16)
            os.execv("\(pluginBinary)", ["\(pluginBinary)"] + sys.argv[1:])

            """
        try Data(runtime.utf8).write(to: URL(fileURLWithPath: "\(folder)/runtime"))
        chmod("\(folder)/runtime", 0o755)
    }

    private func config(_ extra: [String: Any] = [:]) -> [String: Any] {
        node.config(extra: ["ipam": ["type": "sptest-ipam"]].merging(extra) { $1 })
    }

    private var cniPath: [String: String?] { ["CNI_PATH": "\(folder):\(referencePlugins)"] }

    /// Only stdin, stdout, stderr and the ADD's claim (held on purpose: a DEL waits for an IPAM
    /// plugin a killed ADD left running) reach the IPAM plugin: no netlink socket, no pipe.
    func testDelegatedIPAMInheritsOnlyItsStreamsAndTheClaim() throws {
        let pod = try node.makePod("a")
        let add = try node.cni("ADD", containerID: "ctr-a", netns: pod, config: config(), environment: cniPath, plugin: "\(folder)/runtime")
        XCTAssertEqual(add.status, 0, add.stdout)
        let seen = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/fds.json")))
                                 as? [String: String])
        let inherited = seen.filter { !["0", "1", "2"].contains($0.key) && !$0.value.hasPrefix("/proc/") }
        XCTAssertEqual(Array(inherited.values), ["\(node.storeRoot)/claims/\(try XCTUnwrap(node.endpoints().first?.hostInterface))"],
                       "everything the IPAM plugin got: \(seen)")
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-a", netns: pod, config: config(), environment: cniPath).status, 0)
    }

    /// A DEL whose IPAM plugin fails reports it and keeps the record for the runtime's next DEL,
    /// but leaves no claim folder behind; the next DEL, with IPAM back, leaves nothing.
    func testFailedIPAMReleaseLeavesNoClaimBehind() throws {
        let pod = try node.makePod("a")
        XCTAssertEqual(try node.cni("ADD", containerID: "ctr-a", netns: pod, config: config(), environment: cniPath).status, 0)
        FileManager.default.createFile(atPath: "\(folder)/fail-del", contents: nil)
        let failed = try node.cni("DEL", containerID: "ctr-a", netns: pod, config: config(), environment: cniPath)
        XCTAssertNotEqual(failed.status, 0, failed.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(node.storeRoot)/claims"), [], "no claim left")
        XCTAssertEqual(try node.endpoints().count, 1, "the record stays for the next DEL")
        try FileManager.default.removeItem(atPath: "\(folder)/fail-del")
        XCTAssertEqual(try node.cni("DEL", containerID: "ctr-a", netns: pod, config: config(), environment: cniPath).status, 0)
        XCTAssertEqual(try node.endpoints().count, 0)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "\(node.storeRoot)/claims"), [])
    }

    /// An IPAM plugin that hangs is killed at the deadline with the process it started; the ADD
    /// fails with code 11 and leaves nothing behind.
    func testHungIPAMPluginIsKilledAtItsDeadline() throws {
        FileManager.default.createFile(atPath: "\(folder)/hang", contents: nil)
        let pod = try node.makePod("a")
        let started = Date()
        let add = try node.cni("ADD", containerID: "ctr-a", netns: pod, config: config(["ipamTimeout": 2]), environment: cniPath)
        XCTAssertLessThan(Date().timeIntervalSince(started), 20)
        XCTAssertEqual(add.errorCode, 11, add.stdout)
        XCTAssertTrue(add.errorMessage.contains("did not finish within 2"), add.errorMessage)
        let pids = try String(contentsOfFile: "\(folder)/pids", encoding: .utf8).split(separator: " ").compactMap { pid_t($0) }
        XCTAssertEqual(pids.count, 2)
        for pid in pids {
            var gone = false
            for _ in 0..<200 where !gone {
                let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
                gone = state == nil || state == "Z"
                if !gone { usleep(10_000) }
            }
            XCTAssertTrue(gone, "process \(pid) was killed")
            if !gone { kill(pid, SIGKILL) }
        }
        try assertNothingChanged(node)
        XCTAssertEqual(try node.cni("ADD", containerID: "ctr-a", netns: pod, config: config(["ipamTimeout": 0]), environment: cniPath).errorCode, 7,
                       "the deadline is checked")
    }

    /// A symlink at the log path is refused (the config's error) and nothing is written through it.
    func testSymlinkAtTheLogPathIsNotWrittenThrough() throws {
        let target = "/tmp/\(node.prefix)-log-target", link = "/tmp/\(node.prefix)-log-link"
        FileManager.default.createFile(atPath: target, contents: nil)
        XCTAssertEqual(symlink(target, link), 0)
        defer { unlink(link); unlink(target) }
        let pod = try node.makePod("a")
        let add = try node.cni("ADD", containerID: "ctr-a", netns: pod, config: node.config(extra: ["logFile": link]))
        XCTAssertEqual(add.errorCode, 7, add.stdout)
        _ = try node.add("ctr-a", pod: pod)
        let del = try node.cni("DEL", containerID: "ctr-a", netns: pod, config: node.config(extra: ["logFile": link]))
        XCTAssertEqual(del.status, 0, del.stdout)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: target)[.size] as? Int, 0, "nothing went through the symlink")
    }

    /// A cgroupPath with ".." (here one that climbs out of the node's cgroup and back into it) is
    /// refused naming the key, before anything changes.
    func testCgroupPathClimbingUpIsRefused() throws {
        let pod = try node.makePod("a")
        var config = node.config(extra: ["socketLB": ["scope": "pod"]])
        config["runtimeConfig"] = ["cgroupPath": "\(node.prefix)/../\(node.prefix)"]
        let add = try node.cni("ADD", containerID: "ctr-a", netns: pod, config: config)
        XCTAssertEqual(add.errorCode, 7, add.stdout)
        XCTAssertTrue(add.errorMessage.contains("\"runtimeConfig.cgroupPath\""), add.errorMessage)
        try assertNothingChanged(node)
    }
}
