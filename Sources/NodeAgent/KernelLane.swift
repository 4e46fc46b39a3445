// SPDX-License-Identifier: Apache-2.0
import Dispatch

/// Where the agent's blocking kernel work runs. The agent is structured concurrency throughout
/// (one task group of loops, an actor for its state), and the cooperative pool behind it has one
/// thread per core: a thread that waits on the kernel there (a tcx attach through its RCU grace
/// period, the store's lock an ADD holds, a dump of every route, the nft tool) stalls every other
/// task of the agent, the watches and the health port's answers included. Such work runs on a
/// lane instead: a thread of its own, one job at a time, as the task that asked (`run`).
///
/// Lanes are few and named for what may wait on what: `reconcile` (the agent's steps, on its
/// actor), `promotions` and `retiredVeths` (which wait through grace periods, and for requests),
/// and `datapath` (the connection sweep and the metrics snapshots, which walk maps). A job waits
/// for the jobs of its lane, and work isolated to the actor also for the actor: only the
/// reconcile lane runs such work, so no other lane's waiting ever holds the actor.
final class KernelLane: TaskExecutor {
    static let reconcile = KernelLane("swiftpath.agent.reconcile")
    static let promotions = KernelLane("swiftpath.agent.promotions")
    static let retiredVeths = KernelLane("swiftpath.agent.retired-veths")
    static let datapath = KernelLane("swiftpath.agent.datapath")

    /// A serial queue of the overcommitting kind: it always gets a thread, however many others wait.
    private let queue: DispatchQueue

    private init(_ label: String) { queue = DispatchQueue(label: label) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// Runs `body` on this lane, in the caller's isolation: an actor's blocking work keeps the
    /// actor, as it would inline, and leaves the cooperative pool's thread free.
    func run<T, Failure: Error>(isolation: isolated (any Actor)? = #isolation,
                                _ body: () throws(Failure) -> T) async throws(Failure) -> T {
        try await withTaskExecutorPreference(self, isolation: isolation) { () async throws(Failure) -> T in try body() }
    }
}
