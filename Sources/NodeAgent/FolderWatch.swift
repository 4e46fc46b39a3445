// SPDX-License-Identifier: Apache-2.0
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Waits for a folder's new entries (inotify), for whoever acts on them: `wait` returns the moment
/// one appears, or after its timeout in any case, which also covers the time before the folder
/// exists. A burst of entries is one return. It blocks its thread: it is for a `KernelLane`.
/// Owned by one task, used by it alone.
final class FolderWatch {
    private let folder: String
    private var inotify: OwnedDescriptor?

    init(folder: String) { self.folder = folder }

    /// Whether the folder is watched now (it stops being when the folder goes).
    var isWatching: Bool { inotify != nil }

    /// Starts watching the folder once it exists; true once it is watched.
    @discardableResult
    func watchIfPossible() -> Bool {
        if inotify != nil { return true }
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else { return false }
        let owned = OwnedDescriptor(FileDescriptor(rawValue: descriptor))
        guard inotify_add_watch(descriptor, folder, UInt32(IN_CREATE | IN_MOVED_TO)) >= 0 else { return false }
        inotify = owned
        return true
    }

    /// Returns when an entry appears in the folder, or after `milliseconds`.
    func wait(milliseconds: Int32) {
        guard let inotify else {
            var pause = timespec(tv_sec: Int(milliseconds / 1000), tv_nsec: Int(milliseconds % 1000) * 1_000_000)
            nanosleep(&pause, nil)
            return
        }
        var request = pollfd(fd: inotify.rawValue, events: Int16(POLLIN), revents: 0)
        guard poll(&request, 1, milliseconds) > 0 else { return }
        if Self.drain(inotify.rawValue).contains(where: { $0 & UInt32(IN_IGNORED) != 0 }) {
            // The folder is gone (`datapath unload`): watched again once it is back.
            self.inotify = nil
        }
    }

    /// The masks of the events waiting on `descriptor`, read to the end.
    private static func drain(_ descriptor: Int32) -> [UInt32] {
        var masks: [UInt32] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            guard count > 0 else { return masks }
            var offset = 0
            while offset + MemoryLayout<inotify_event>.size <= count {
                let event = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: inotify_event.self) }
                masks.append(event.mask)
                offset += MemoryLayout<inotify_event>.size + Int(event.len)
            }
        }
    }
}
