// SPDX-License-Identifier: Apache-2.0
import Foundation
import XCTest

/// The store is where root unlinks things, on a filesystem (bpffs) that is often mounted
/// world-writable: a store root someone else made is refused, and a symlink planted in the store
/// is never followed by DEL, GC or unload, nor removed.
final class StoreSecurityTests: XCTestCase {
    private var node: TestNode!
    /// A folder outside bpffs holding a regular file: what a planted symlink points at.
    private var victim = ""

    override func setUpWithError() throws {
        node = try TestNode(self)
        victim = "/tmp/\(node.prefix)-victim"
        try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: false)
        addTeardownBlock { [victim] in try? FileManager.default.removeItem(atPath: victim) }
        // Named as the datapath's pins are, so that a removal following the symlink would take them.
        for name in ["precious", "pod_egress"] { try Data("keep me\n".utf8).write(to: URL(fileURLWithPath: "\(victim)/\(name)")) }
    }

    private func assertVictimUntouched(file: StaticString = #filePath, line: UInt = #line) {
        for name in ["precious", "pod_egress"] {
            XCTAssertEqual(try? String(contentsOfFile: "\(victim)/\(name)", encoding: .utf8), "keep me\n", "\(name) survives",
                           file: file, line: line)
        }
    }

    /// Whether a symlink (not what it points at) is at `path`.
    private func isSymlink(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK
    }

    private func hostInterface() throws -> String {
        try XCTUnwrap(try node.endpoints().first?.hostInterface)
    }

    func testStoreRootOfAnotherUserOrOpenToOthersIsRefused() throws {
        let pod = try node.makePod("a")
        for (owner, mode) in [(uid_t(65534), mode_t(0o700)), (uid_t(0), mode_t(0o777)), (uid_t(0), mode_t(0o750))] {
            XCTAssertEqual(mkdir(node.storeRoot, 0o700), 0)
            XCTAssertEqual(chown(node.storeRoot, owner, 0), 0)
            XCTAssertEqual(chmod(node.storeRoot, mode), 0)
            let refused = try node.cni("ADD", containerID: "ctr-a", netns: pod, config: node.config())
            XCTAssertEqual(refused.errorCode, 104, refused.stdout)
            let details = (try refused.json())["details"] as? String ?? ""
            XCTAssertTrue(details.contains(node.storeRoot) && details.contains("uid \(owner)") && details.contains("mode \(String(mode, radix: 8))"),
                          details)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: node.storeRoot), [], "nothing was made in it")
            XCTAssertEqual(try node.hostVeths(), [])
            let listed = try runProcess([pluginBinary, "service", "list", "--root", node.storeRoot])
            XCTAssertNotEqual(listed.status, 0, "the CLI refuses it too")
            XCTAssertEqual(rmdir(node.storeRoot), 0)
        }
        // A symlink as the root is refused as well.
        let elsewhere = node.storeRoot + "x"
        XCTAssertEqual(mkdir(elsewhere, 0o700), 0)
        defer { rmdir(elsewhere) }
        XCTAssertEqual(symlink(elsewhere, node.storeRoot), 0)
        defer { unlink(node.storeRoot) }
        let refused = try node.cni("ADD", containerID: "ctr-a", netns: pod, config: node.config())
        XCTAssertEqual(refused.errorCode, 104, refused.stdout)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: elsewhere), [])
    }

    /// A symlink where a pod's link folder would be (endpoints/<host device>), pointing at a folder
    /// outside bpffs: DEL, GC and unload neither follow it nor remove it.
    func testSymlinkAsALinkFolderIsNotFollowed() throws {
        let pod = try node.makePod("a"), other = try node.makePod("b")
        _ = try node.add("ctr-a", pod: pod)
        let hostName = try hostInterface()
        _ = try node.add("ctr-b", pod: other)
        let folder = "\(node.storeRoot)/endpoints/\(hostName)"
        try shell("rm", "-rf", folder)   // its link unpinned: what a planted symlink stands in for
        XCTAssertEqual(symlink(victim, folder), 0)
        let planted = "\(node.storeRoot)/endpoints/spathplanted0"
        XCTAssertEqual(symlink(victim, planted), 0)

        let del = try node.cni("DEL", containerID: "ctr-a", netns: pod, config: node.config())
        XCTAssertEqual(del.status, 0, del.stdout)
        assertVictimUntouched()
        XCTAssertTrue(isSymlink(folder), "the symlink is left alone")

        var gcConfig = node.config()
        gcConfig["cni.dev/valid-attachments"] = [["containerID": "ctr-b", "ifname": "eth0"]]
        let gc = try node.cni("GC", config: gcConfig)
        XCTAssertEqual(gc.status, 0, gc.stdout)
        assertVictimUntouched()
        XCTAssertTrue(isSymlink(planted))
        let log = (try? String(contentsOfFile: "/tmp/\(node.prefix).log", encoding: .utf8)) ?? ""
        XCTAssertTrue(log.contains("left alone") && log.contains("spathplanted0"), "GC says what it left: \(log)")

        let unload = try runProcess(["nsenter", "--net=/run/netns/\(node.netns)", pluginBinary, "datapath", "unload", "--root", node.storeRoot])
        XCTAssertEqual(unload.status, 0, unload.stderr)
        XCTAssertTrue(unload.stdout.contains("left alone"), unload.stdout)
        assertVictimUntouched()
        XCTAssertTrue(isSymlink(planted) && isSymlink(folder))
    }

    /// A symlink planted among a pod's link pins: DEL unpins the link, leaves the symlink (and what
    /// it points at) alone, and succeeds.
    func testSymlinkInsideALinkFolderIsNotFollowed() throws {
        let pod = try node.makePod("a")
        _ = try node.add("ctr-a", pod: pod)
        let folder = "\(node.storeRoot)/endpoints/\(try hostInterface())"
        let pins = try FileManager.default.contentsOfDirectory(atPath: folder)
        XCTAssertFalse(pins.isEmpty, "the pod has its tcx link pinned")
        XCTAssertEqual(symlink("\(victim)/precious", "\(folder)/evil"), 0)
        XCTAssertEqual(symlink(victim, "\(folder)/evilfolder"), 0)

        let del = try node.cni("DEL", containerID: "ctr-a", netns: pod, config: node.config())
        XCTAssertEqual(del.status, 0, del.stdout)
        assertVictimUntouched()
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder)), ["evil", "evilfolder"],
                       "the link pins went, the symlinks stayed")
        XCTAssertEqual(try node.hostVeths(), [])
        XCTAssertEqual(try node.endpoints().count, 0)
    }
}
