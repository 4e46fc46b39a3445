// SPDX-License-Identifier: Apache-2.0
import BPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// An ADD in flight holds a claim on its attachment: a folder of the store, `claims/<host
/// device>`, that it keeps locked (flock) while it runs. The kernel drops the lock when the
/// process ends, however it ends, so a pending record whose claim nobody holds is what an ADD
/// killed half-way left behind, and one whose claim is held is an ADD still at work, which GC
/// must leave alone.
///
/// The lock's descriptor is inherited by the IPAM plugin ADD runs: an ADD killed while host-local
/// leases leaves host-local to finish, still holding the claim, and the DEL that follows waits
/// for it (`awaitAndClaim`) before it releases, so the lease cannot land after the release.
public final class Claim {
    /// The host device of the attachment claimed.
    public let hostName: String
    private let descriptor: OwnedDescriptor

    fileprivate init(hostName: String, descriptor: FileDescriptor) {
        self.hostName = hostName
        self.descriptor = OwnedDescriptor(descriptor)
    }
}

extension EndpointStore {
    func claimPath(_ hostName: String) -> String { layout.path(.claims) + "/" + hostName }

    /// Takes the claim on `hostName`. Fails with EWOULDBLOCK when another run holds it.
    public func claim(_ hostName: String) throws(BPFError) -> Claim {
        let path = claimPath(hostName)
        var attempts = 0
        var descriptor: FileDescriptor
        while true {
            for folder in [layout.path(.claims), path] {
                guard mkdir(folder, 0o700) == 0 || Errno.current == .fileExists else { throw BPFError("create \(folder)", .current) }
            }
            // The holder before (the agent moving the pod to tcx) may drop the folder between the
            // mkdir and the open: it is made again.
            do throws(BPFError) {
                descriptor = try openClaim(path, inheritable: true)
                break
            } catch where error.errno == .noSuchFileOrDirectory && attempts < 10 {
                attempts += 1
            }
        }
        guard flock(descriptor.rawValue, LOCK_EX | LOCK_NB) == 0 else {
            let error = Errno.current
            try? descriptor.close()
            throw BPFError("claim \(hostName)", error)
        }
        return Claim(hostName: hostName, descriptor: descriptor)
    }

    /// Whether a live run holds the claim on `hostName`.
    public func isClaimed(_ hostName: String) throws(BPFError) -> Bool {
        let path = claimPath(hostName)
        guard access(path, F_OK) == 0 else { return false }
        let descriptor = try openClaim(path)
        defer { try? descriptor.close() }
        if flock(descriptor.rawValue, LOCK_EX | LOCK_NB) == 0 { return false }
        guard Errno.current == .wouldBlock else { throw BPFError("test the claim on \(hostName)", .current) }
        return true
    }

    /// Removes the claim folder of `hostName` (held or not: the holder's lock dies with its descriptor).
    public func dropClaim(_ hostName: String) throws(BPFError) {
        // Reached without following a symlink: only the empty folder a claim is goes.
        guard let claims = try PinFolder.open(root, StoreLayout.Folder.claims.rawValue) else { return }
        guard try claims.removeFolder(hostName) else {
            throw BPFError("remove claim \(claimPath(hostName)): not an empty folder, left alone", kind: .untrusted)
        }
    }

    /// The host devices that have a claim folder, held or not.
    public func claimedNames() -> [String] { folderEntries(layout.path(.claims)) }

    /// Waits, `seconds` at the most, until nobody holds the claim on `hostName` (an IPAM plugin a
    /// killed ADD left running still does). Returns whether it came free.
    @discardableResult
    public func awaitClaim(_ hostName: String, seconds: Double = 10) throws(BPFError) -> Bool {
        for _ in 0..<Int(seconds * 100) {
            guard try isClaimed(hostName) else { return true }
            usleep(10_000)
        }
        return false
    }

    /// Takes the claim on `hostName`, waiting `seconds` at the most for its holder to finish.
    /// Returns nil when it is still held by then.
    public func awaitAndClaim(_ hostName: String, seconds: Double = 10) throws(BPFError) -> Claim? {
        for _ in 0..<Int(seconds * 100) {
            do { return try claim(hostName) } catch where error.errno == .wouldBlock {
                usleep(10_000)
            }
        }
        return nil
    }

    private func openClaim(_ path: String, inheritable: Bool = false) throws(BPFError) -> FileDescriptor {
        do {
            return try FileDescriptor.open(FilePath(path), .readOnly, options: inheritable ? [.directory] : [.directory, .closeOnExec])
        } catch {
            throw BPFError("open claim \(path)", error as? Errno)
        }
    }
}
