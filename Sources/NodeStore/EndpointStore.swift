// SPDX-License-Identifier: Apache-2.0
import BPF
import CLinux
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The node's shared state: a folder in bpffs holding pinned maps, used by every short-lived run
/// of the plugin and by the CLI. Mutations that read before they write take `withLock`.
public final class EndpointStore {
    public let root: String
    public var layout: StoreLayout { StoreLayout(root: root) }
    private let directory: OwnedDescriptor
    let endpoints: BPFMap
    let leases: BPFMap
    let cursors: BPFMap
    let services: BPFMap
    let hostPorts: BPFMap
    let hostPortBackends: BPFMap
    private var lockDepth = 0

    private init(root: String, directory: OwnedDescriptor, endpoints: BPFMap, leases: BPFMap, cursors: BPFMap, services: BPFMap,
                 hostPorts: BPFMap, hostPortBackends: BPFMap) {
        self.root = root
        self.directory = directory
        self.endpoints = endpoints
        self.leases = leases
        self.cursors = cursors
        self.services = services
        self.hostPorts = hostPorts
        self.hostPortBackends = hostPortBackends
    }

    /// Opens the store at `root`, creating its folder and maps (and mounting bpffs at
    /// /sys/fs/bpf when nothing is mounted there) if they do not exist yet. A root that is not
    /// this user's alone is refused before anything is made in it.
    public static func open(root: String = StoreLayout.defaultRoot) throws(BPFError) -> EndpointStore {
        try prepareFolder(root)
        let directory: OwnedDescriptor
        do {
            directory = OwnedDescriptor(try FileDescriptor.open(FilePath(root), .readOnly, options: [.directory, .noFollow, .closeOnExec]))
        } catch let error as Errno where error == .tooManySymbolicLinkLevels || error == .notDirectory {
            throw BPFError("store root \(root) is a symlink or not a folder: refused", error, kind: .untrusted)
        } catch {
            throw BPFError("open store \(root)", error as? Errno)
        }
        try requireOwnFolder(directory, root: root)
        let layout = StoreLayout(root: root)
        let maps = try withLock(directory, root: root) { () throws(BPFError) in
            (try BPFMap.openOrCreate(at: layout.path(.endpoints), EndpointRecord.layout),
             try BPFMap.openOrCreate(at: layout.path(.leases), Lease.layout),
             try BPFMap.openOrCreate(at: layout.path(.leaseCursors), Lease.cursorLayout),
             try BPFMap.openOrCreate(at: layout.path(.services), ServiceRecord.layout),
             try BPFMap.openOrCreate(at: layout.path(.hostPorts), HostPortRecord.layout),
             try BPFMap.openOrCreate(at: layout.path(.hostPortBackends), HostPortRecord.backendLayout))
        }
        return EndpointStore(root: root, directory: directory, endpoints: maps.0, leases: maps.1, cursors: maps.2, services: maps.3,
                             hostPorts: maps.4, hostPortBackends: maps.5)
    }

    /// The store at `root` if there is one, or nil: what the verbs that only look or clean up
    /// (DEL, CHECK, GC, STATUS, the CLI's listings) use, so that they never create a store.
    public static func openExisting(root: String = StoreLayout.defaultRoot) throws(BPFError) -> EndpointStore? {
        guard clinux_fs_magic_at(root) == BPF_FS_MAGIC else { return nil }
        return try open(root: root)
    }

    /// Whether `root` is where a store can be: a path bpffs accepts, in a bpf filesystem (or
    /// under /sys/fs/bpf, mounted on demand).
    public static func canHold(root: String) -> Bool { placement(of: root) != nil }

    /// Where a store at `root` would stand: already on bpffs, or to be made in a parent that is
    /// bpffs (or /sys/fs/bpf, still to be mounted). nil when no store can be there.
    private enum Placement: Equatable {
        case onBPFFS
        case inParent(String, mountFirst: Bool)
    }

    private static func placement(of root: String) -> Placement? {
        // bpffs refuses names with a '.', so a root with one could never hold a pin.
        guard root.hasPrefix("/"), root.count > 1, !root.contains(".") else { return nil }
        if clinux_fs_magic_at(root) == BPF_FS_MAGIC { return .onBPFFS }
        let parent = "/" + root.split(separator: "/").dropLast().joined(separator: "/")
        if clinux_fs_magic_at(parent) == BPF_FS_MAGIC { return .inParent(parent, mountFirst: false) }
        // The usual node has /sys/fs/bpf as an empty mount point until something mounts it.
        return parent == "/sys/fs/bpf" ? .inParent(parent, mountFirst: true) : nil
    }

    /// Runs `body` holding the store's exclusive lock (flock on the folder), so that concurrent
    /// plugin runs see each other's read-modify-write sequences whole. Reentrant: a body that
    /// calls another locked operation of the same store keeps the lock until the outermost ends.
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(BPFError) -> Result<T, E> {
        func run() -> Result<T, E> {
            lockDepth += 1
            defer { lockDepth -= 1 }
            do throws(E) { return .success(try body()) } catch { return .failure(error) }
        }
        if lockDepth > 0 { return run() }
        return try Self.withLock(directory, root: root) { () throws(BPFError) -> Result<T, E> in run() }
    }

    /// `withLock` for bodies that throw BPFError themselves.
    public func withLockOrThrow<T>(_ body: () throws(BPFError) -> T) throws(BPFError) -> T {
        try withLock(body).get()
    }

    private static func withLock<T>(_ directory: OwnedDescriptor, root: String,
                                    _ body: () throws(BPFError) -> T) throws(BPFError) -> T {
        while flock(directory.rawValue, LOCK_EX) != 0 {
            guard Errno.current == .interrupted else { throw BPFError("lock store \(root)", .current) }
        }
        defer { flock(directory.rawValue, LOCK_UN) }
        return try body()
    }

    /// Refuses a store root anyone but this user could have made or can write: bpffs is often
    /// mounted world-writable, and a root made beforehand by another user would let them plant
    /// what root later writes, reads and removes. Checked on the descriptor opened, not the path.
    private static func requireOwnFolder(_ directory: OwnedDescriptor, root: String) throws(BPFError) {
        guard clinux_fs_magic(directory.rawValue) == BPF_FS_MAGIC else {
            throw BPFError("store root \(root) is not on a bpf filesystem: refused", kind: .untrusted)
        }
        var status = stat()
        guard fstat(directory.rawValue, &status) == 0 else { throw BPFError("stat store root \(root)", .current) }
        let mode = status.st_mode & 0o7777
        guard status.st_uid == geteuid(), mode & 0o077 == 0 else {
            throw BPFError("store root \(root) is owned by uid \(status.st_uid) with mode \(String(mode, radix: 8)): refused, it must "
                           + "be owned by uid \(geteuid()) with no group or other permissions (remove it, or chmod go= it)",
                           kind: .untrusted)
        }
    }

    /// Makes sure `root` is a folder on a bpf filesystem.
    private static func prepareFolder(_ root: String) throws(BPFError) {
        switch placement(of: root) {
        case nil:
            throw BPFError("store root \(root) must be an absolute path without '.', on a bpf filesystem")
        case .onBPFFS:
            return
        case .inParent(let parent, let mountFirst):
            if mountFirst, clinux_mount_bpffs(parent) != 0 {
                throw BPFError("\(parent) is not a bpf filesystem (mount -t bpf bpf \(parent))", .current)
            }
            guard mkdir(root, 0o700) == 0 || Errno.current == .fileExists else {
                throw BPFError("create store folder \(root)", .current)
            }
        }
    }
}

