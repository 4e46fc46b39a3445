// SPDX-License-Identifier: Apache-2.0
import Dispatch
import SystemCallSupport
#if canImport(Glibc)
import Glibc
#endif

/// Wakeups for whoever acts on a folder's entries: the moment an entry appears (inotify), and
/// every `interval` in any case, which also covers the time before the folder exists. Bursts
/// coalesce into one wakeup.
final class FolderWakeups: @unchecked Sendable {
    let wakeups: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation
    private let folder: String
    private let queue = DispatchQueue(label: "swiftpath.folder-wakeups")
    private var source: DispatchSourceRead?
    private var ticker: Task<Void, Never>?

    init(folder: String, interval nanoseconds: UInt64) {
        self.folder = folder
        (wakeups, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        ticker = Task { [continuation] in
            while !Task.isCancelled {
                continuation.yield()
                try? await Task.sleep(nanoseconds: nanoseconds)
            }
        }
        continuation.onTermination = { [self] _ in stop() }
    }

    /// Whether the folder is watched now (it stops being when the folder goes).
    var isWatching: Bool { queue.sync { source != nil } }

    /// Starts watching the folder once it exists; true once it is watched.
    @discardableResult
    func watchIfPossible() -> Bool {
        queue.sync {
            if source != nil { return true }
            let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            guard descriptor >= 0 else { return false }
            guard inotify_add_watch(descriptor, folder, UInt32(IN_CREATE | IN_MOVED_TO)) >= 0 else {
                close(descriptor)
                return false
            }
            let source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
            source.setEventHandler { [self, continuation] in
                if Self.drain(descriptor).contains(where: { $0 & UInt32(IN_IGNORED) != 0 }) {
                    // The folder is gone (`datapath unload`): watched again once it is back.
                    self.source?.cancel()
                    self.source = nil
                }
                continuation.yield()
            }
            source.setCancelHandler { close(descriptor) }
            source.resume()
            self.source = source
            return true
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

    private func stop() {
        ticker?.cancel()
        queue.async { [self] in
            source?.cancel()
            source = nil
        }
    }
}
