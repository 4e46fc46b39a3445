// SPDX-License-Identifier: Apache-2.0
import CLinux
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A folder of pins in bpffs, opened without following a symlink and worked on through its
/// descriptor only. The store's folders are where root unlinks things: a symlink planted in one
/// (bpffs can be mounted world-writable) would otherwise lead those unlinks anywhere on the node.
/// So a folder is reached component by component with O_NOFOLLOW, must be on bpffs, and only
/// its pins (which bpffs shows as regular files) are ever unlinked; anything else is left alone
/// and reported.
public final class PinFolder {
    /// What a folder entry is, as fstatat sees it without following it.
    public enum EntryKind: Equatable, Sendable {
        /// A pinned map, program or link.
        case pin
        case folder
        /// A symlink, or anything else that bpffs does not make for a pin.
        case other
    }

    public let path: String
    private let descriptor: OwnedDescriptor

    private init(path: String, descriptor: FileDescriptor) {
        self.path = path
        self.descriptor = OwnedDescriptor(descriptor)
    }

    /// Opens the folder `root` (its last component not a symlink), then each folder of
    /// `relative` inside it ("endpoints/spathX"). nil when one of them is missing; refused when one
    /// is a symlink, not a folder, or not on bpffs.
    public static func open(_ root: String, _ relative: String = "") throws(BPFError) -> PinFolder? {
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(FilePath(root), .readOnly, options: [.directory, .noFollow, .closeOnExec])
        } catch let error as Errno where error == .noSuchFileOrDirectory {
            return nil
        } catch {
            throw refusal(root, error as? Errno)
        }
        let folder = PinFolder(path: root, descriptor: descriptor)
        try folder.requireBPFFS()
        var current = folder
        for name in relative.split(separator: "/") {
            guard let next = try current.subfolder(String(name)) else { return nil }
            current = next
        }
        return current
    }

    /// The folder `name` in this one, or nil when there is none; refused when `name` is a symlink
    /// or not a folder.
    public func subfolder(_ name: String) throws(BPFError) -> PinFolder? {
        let raw = openat(descriptor.rawValue, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard raw >= 0 else {
            let error = Errno.current
            if error == .noSuchFileOrDirectory { return nil }
            throw Self.refusal(path + "/" + name, error)
        }
        let folder = PinFolder(path: path + "/" + name, descriptor: FileDescriptor(rawValue: raw))
        // Something mounted over a folder of the store is not bpffs's.
        try folder.requireBPFFS()
        return folder
    }

    /// The names in the folder, sorted, read through its descriptor.
    public func entries() throws(BPFError) -> [String] {
        // fdopendir takes its descriptor over: it gets a duplicate, this folder keeps its own.
        let copy = dup(descriptor.rawValue)
        guard copy >= 0, let stream = fdopendir(copy) else {
            let error = Errno.current
            if copy >= 0 { close(copy) }
            throw BPFError("list \(path)", error)
        }
        defer { closedir(stream) }
        rewinddir(stream)
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// What `name` is, not following it; nil when it is not there.
    public func kind(of name: String) throws(BPFError) -> EntryKind? {
        var status = stat()
        guard fstatat(descriptor.rawValue, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            if Errno.current == .noSuchFileOrDirectory { return nil }
            throw BPFError("stat \(path)/\(name)", .current)
        }
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .pin
        case S_IFDIR: return .folder
        default: return .other
        }
    }

    /// Unpins `name` when it is a pin. Returns false, leaving it alone, when it is anything else
    /// (a symlink is never followed, nor removed); true when it was unpinned or was not there.
    @discardableResult
    public func removePin(_ name: String) throws(BPFError) -> Bool {
        switch try kind(of: name) {
        case nil: return true
        case .folder?, .other?: return false
        case .pin?:
            guard unlinkat(descriptor.rawValue, name, 0) == 0 || Errno.current == .noSuchFileOrDirectory else {
                throw BPFError("unpin \(path)/\(name)", .current)
            }
            return true
        }
    }

    /// Removes the folder `name` when it is an empty folder. Returns false, leaving it alone, when
    /// it still holds something or is not a folder; true when it was removed or was not there.
    @discardableResult
    public func removeFolder(_ name: String) throws(BPFError) -> Bool {
        switch try kind(of: name) {
        case nil: return true
        case .pin?, .other?: return false
        case .folder?: break
        }
        guard unlinkat(descriptor.rawValue, name, AT_REMOVEDIR) == 0 else {
            switch Errno.current {
            case .noSuchFileOrDirectory: return true
            case .directoryNotEmpty: return false
            case let error: throw BPFError("remove \(path)/\(name)", error)
            }
        }
        return true
    }

    /// Unpins every pin of the subfolder `name` and removes it, leaving what is not a pin (and
    /// the folder, then) where it is. Returns the paths left alone; none when `name` is missing.
    public func removePinFolder(_ name: String) throws(BPFError) -> [String] {
        switch try kind(of: name) {
        case nil: return []
        case .pin?, .other?: return ["\(path)/\(name)"]
        case .folder?: break
        }
        guard let folder = try subfolder(name) else { return [] }
        var left: [String] = []
        for entry in try folder.entries() where !(try folder.removePin(entry)) { left.append("\(folder.path)/\(entry)") }
        if !(try removeFolder(name)), left.isEmpty { left.append(folder.path) }
        return left
    }

    private func requireBPFFS() throws(BPFError) {
        guard clinux_fs_magic(descriptor.rawValue) == BPF_FS_MAGIC else {
            throw BPFError("\(path) is not on a bpf filesystem: its entries are not pins to remove", kind: .untrusted)
        }
    }

    /// Why a folder of the store was not opened: a symlink (ELOOP) or another file than a folder
    /// (ENOTDIR) is said in words, as nothing of swiftpath's ever is either.
    private static func refusal(_ path: String, _ error: Errno?) -> BPFError {
        switch error {
        case .tooManySymbolicLinkLevels?: BPFError("\(path) is a symlink, not a folder of pins: left alone", error, kind: .untrusted)
        case .notDirectory?: BPFError("\(path) is not a folder of pins: left alone", error, kind: .untrusted)
        default: BPFError("open \(path)", error)
        }
    }
}
