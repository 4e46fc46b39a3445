// SPDX-License-Identifier: Apache-2.0
/// The undo list of a verb that changes the host step by step: when a later step fails, every
/// earlier one is undone, newest first.
struct Rollback {
    private var steps: [(name: String, undo: () throws -> Void)] = []
    private let log: Log

    init(log: Log) { self.log = log }

    mutating func onFailure(_ name: String, _ undo: @escaping () throws -> Void) {
        steps.append((name, undo))
    }

    /// Undoes every recorded step; failures are logged and do not stop the others.
    func run() {
        for step in steps.reversed() {
            do { try step.undo() } catch { log("rollback of \(step.name) failed: \(error)") }
        }
    }
}
