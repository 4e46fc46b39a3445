// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging

/// Keeps a local copy of one collection of the API, the way client-go's reflector does: list,
/// then watch from the list's resourceVersion (with bookmarks), list again when the server says
/// the version is gone (410), and reconnect with jittered exponential backoff when the connection
/// fails. After each change the whole copy is handed on with the keys that changed, so what consumes
/// it can reconcile to a full desired state or just the part that moved: an event missed across a
/// relist is never lost (the relist's difference names it), and none is applied twice.
public actor Reflector<Object: KubeObject> {
    public enum State: String, Sendable {
        case listing, watching, backingOff = "backing_off"
    }

    public let path: String
    private let client: KubeClient
    private let logger: Logger
    /// By `metadata.key`: `namespace/name`, or `name` for cluster-scoped objects.
    public private(set) var objects: [String: Object] = [:]
    public private(set) var resourceVersion = ""
    public private(set) var state = State.listing
    /// Lists made (the first and every relist).
    public private(set) var lists = 0
    /// Whether a list has completed: the copy is the API's as of some moment.
    public var synced: Bool { lists > 0 }
    /// When the API server last said anything of the collection: a list, an event, a bookmark.
    public private(set) var lastHeard: ContinuousClock.Instant?
    /// When the loop last got anywhere: a list or watch answered, ended or failed. With every
    /// response under a deadline, a loop that gets nowhere for long is stuck, not waiting.
    public private(set) var lastProgress = ContinuousClock.now

    public init(client: KubeClient, path: String, logger: Logger) {
        self.client = client
        self.path = path
        self.logger = logger
    }

    /// Runs until cancelled, calling `changed` with the whole copy and the keys that changed (all of
    /// them after the first list) after every change to it (not after bookmarks or relists that
    /// change nothing).
    /// A watch asks the server to end it after `timeoutSeconds` to twice that, drawn each time,
    /// so that a fleet of agents does not reconnect in step. A cut or silent connection resumes
    /// the watch from the last version seen (the server replays what came since, or says 410);
    /// a watch the server refused (a 4xx other than 410 and 429) lists again after the backoff,
    /// since what it was asked may be what it refuses; an overloaded or failing server (429, 5xx)
    /// is not made to serve a list on top.
    public func run(timeoutSeconds: Int = 300, changed: @Sendable ([String: Object], Set<String>) async -> Void) async {
        var backoff = Backoff()
        var needsList = true
        while !Task.isCancelled {
            do {
                if needsList {
                    state = .listing
                    let list = try await client.list(path, as: Object.self, notOlderThan: lists > 0 ? resourceVersion : nil)
                    let fresh = Dictionary(list.items.map { ($0.metadata.key, $0) }, uniquingKeysWith: { $1 })
                    resourceVersion = list.metadata.resourceVersion ?? ""
                    lists += 1
                    lastHeard = .now
                    lastProgress = .now
                    needsList = false
                    let keys = lists == 1 ? Set(fresh.keys) : Set(fresh.keys).union(objects.keys).filter { fresh[$0] != objects[$0] }
                    objects = fresh
                    logger.info("listed", metadata: ["path": "\(path)", "objects": "\(fresh.count)", "resourceVersion": "\(resourceVersion)"])
                    if !keys.isEmpty || lists == 1 { await changed(objects, keys) }
                }
                state = .watching
                lastProgress = .now
                let timeout = Int.random(in: timeoutSeconds...(2 * timeoutSeconds))
                for try await event in client.watch(path, from: resourceVersion, as: Object.self, timeoutSeconds: timeout) {
                    backoff.reset()
                    lastHeard = .now
                    lastProgress = .now
                    if let key = try apply(event) { await changed(objects, [key]) }
                }
            } catch KubeError.gone(let message) {
                logger.info("resourceVersion gone, listing again", metadata: ["path": "\(path)", "detail": "\(message)"])
                needsList = true
            } catch {
                if Task.isCancelled { break }
                lastProgress = .now
                state = .backingOff
                if case KubeError.status(let code, _) = error, (400..<500).contains(code), code != 429 { needsList = true }
                let delay = backoff.next()
                logger.warning("watch failed, retrying", metadata: ["path": "\(path)", "error": "\(error)", "delay_ms": "\(delay / 1_000_000)"])
                try? await Task.sleep(nanoseconds: delay)
            }
        }
    }

    /// Applies one event to the copy; returns the key of the object it changed, if any.
    private func apply(_ event: WatchEvent<Object>) throws -> String? {
        switch event {
        case .added(let object), .modified(let object):
            advance(object.metadata.resourceVersion)
            guard objects[object.metadata.key] != object else { return nil }
            objects[object.metadata.key] = object
            return object.metadata.key
        case .deleted(let object):
            advance(object.metadata.resourceVersion)
            return objects.removeValue(forKey: object.metadata.key) != nil ? object.metadata.key : nil
        case .bookmark(let version):
            advance(version)
            return nil
        case .error(let status):
            if status.code == 410 { throw KubeError.gone(status.message ?? "watch error 410") }
            throw KubeError.status(code: status.code ?? 500, message: status.message ?? "watch error")
        }
    }

    private func advance(_ version: String?) {
        if let version, !version.isEmpty { resourceVersion = version }
    }
}

/// Exponential backoff with jitter: a ceiling of 0.2 s doubling to 30 s, each delay drawn uniformly
/// between half the ceiling and the ceiling, so that a fleet of agents does not reconnect in step.
public struct Backoff: Sendable {
    public static let first: UInt64 = 200_000_000
    public static let ceiling: UInt64 = 30_000_000_000
    private var current = Backoff.first

    public init() {}

    public mutating func next() -> UInt64 {
        let delay = UInt64.random(in: current / 2...current)
        current = min(current * 2, Self.ceiling)
        return delay
    }

    public mutating func reset() { current = Self.first }
}
