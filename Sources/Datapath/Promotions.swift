// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Promotions from tc to tcx: ADD asks, the agent attaches (see `AgentHandoff`).
extension AgentHandoff {
    var promotionFolder: String { Self.promotionFolder(storeRoot: storeRoot) }

    /// The folder of requests in the store at `storeRoot`, which the agent watches.
    public static func promotionFolder(storeRoot: String) -> String { StoreLayout(root: storeRoot).path(.promotions) }

    /// Makes the folder of requests where the store at `storeRoot` exists, for the agent to watch
    /// before the first request. Returns whether it is there.
    @discardableResult
    public static func preparePromotions(storeRoot: String) -> Bool {
        guard access(storeRoot, F_OK) == 0 else { return false }
        return (try? makeFolder(promotionFolder(storeRoot: storeRoot))) != nil
    }

    /// Asks the agent to move the pod of `hostName` from its tc filter to a tcx link.
    public func requestPromotion(hostName: String) throws(BPFError) {
        try makeFolder(promotionFolder)
        try makeFolder("\(promotionFolder)/\(hostName)")
    }

    /// Withdraws a request (DEL, GC): the pod is going.
    public func withdrawPromotion(hostName: String) {
        _ = try? storeFolder(promotionFolder)?.removeFolder(hostName)
    }

    /// The host devices whose pods wait for their tcx link, in the store at `storeRoot` (one
    /// folder read: nothing else of the store is opened to look).
    public static func requestedPromotions(storeRoot: String) -> [String] { folderEntries(promotionFolder(storeRoot: storeRoot)) }

    /// Moves the pod of each request to a tcx link. Each runs under the pod's claim, which DEL
    /// waits for; the attach itself (and its grace period) runs outside the store's
    /// lock, so ADDs meanwhile are not held up; the link is pinned and the record changed under
    /// it, and only if the record still names the same device, wired and on tc. A request whose
    /// pod is gone, or that tcx cannot serve, is dropped. Returns the pods promoted.
    ///
    /// The attach holds the RTNL lock through its grace period, which would stall the netlink
    /// requests of an ADD or DEL at work: while one is (it holds a claim), a request younger than
    /// `patience` seconds waits for the next pass.
    @discardableResult
    public func promotePods(_ hostNames: [String], patience: Double = 0) throws(BPFError) -> [String] {
        let requested = Set(hostNames)
        guard !requested.isEmpty else { return [] }
        let records = Dictionary(try store.records().filter { requested.contains($0.hostName) }.map { ($0.hostName, $0) },
                                 uniquingKeysWith: { first, _ in first })
        var promoted: [String] = []
        for hostName in hostNames {
            if patience > 0, requestAge(hostName) < patience, try isAnotherRunAtWork() { continue }
            defer { withdrawPromotion(hostName: hostName) }
            // A DEL at work holds the claim: its pod is going, and stays on tc until it has.
            guard let record = records[hostName], let claim = try? store.claim(hostName) else { continue }
            defer { try? store.dropClaim(hostName) }
            if try withExtendedLifetime(claim, { () throws(BPFError) in try promote(record) }) { promoted.append(hostName) }
        }
        return promoted
    }

    /// Seconds since the request for `hostName` was made.
    private func requestAge(_ hostName: String) -> Double {
        var status = stat()
        guard stat("\(promotionFolder)/\(hostName)", &status) == 0 else { return .infinity }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec - status.st_mtim.tv_sec) + Double(now.tv_nsec - status.st_mtim.tv_nsec) / 1e9
    }

    /// Whether an ADD or DEL holds a claim now.
    private func isAnotherRunAtWork() throws(BPFError) -> Bool {
        for name in store.claimedNames() where try store.isClaimed(name) { return true }
        return false
    }

    private func promote(_ wired: EndpointRecord) throws(BPFError) -> Bool {
        // A device index means another device in another netns: the device must be the record's,
        // here, under its name (which a DEL that retires it changes).
        guard Self.isPromotable(wired), deviceName(wired.hostIndex) == wired.hostName else { return false }
        let link: BPFLink
        do { link = try BPFLink.attachTCX(try pods.podEgress, ifindex: wired.hostIndex, direction: .ingress) } catch where error.kind != .missingPin {
            // The device is gone, or the kernel has no tcx: the pod stays on tc.
            return false
        }
        // Unless pinned below, the link detaches when it is released, on return.
        return try store.withLockOrThrow { () throws(BPFError) -> Bool in
            // DEL holds the claim, so none runs now; the name is looked at again all the same.
            guard let current = try store.record(containerID: wired.containerID, ifname: wired.ifname),
                  Self.isPromotable(current), current.hostIndex == wired.hostIndex,
                  deviceName(current.hostIndex) == current.hostName else { return false }
            // An upgrade in place while the link was made swapped the programs behind the pins: the
            // link takes the build now pinned, as the upgrade would have given it.
            if let pinned = try BPFProgram.pinned(at: "\(self.folder)/\(DatapathPrograms.podEgress)"), pinned.id != link.info.programID {
                try link.update(to: pinned)
            }
            let folder = pods.linkFolder(current.hostName)
            try pin(link, named: DatapathPrograms.podEgress, in: folder)
            var promoted = current
            (promoted.attachMode, promoted.attachID) = (AttachMode.tcx.rawValue, link.info.id)
            do throws(BPFError) { try store.update(promoted) } catch {
                try? removeLinkFolder(folder)
                throw error
            }
            tcFilter(current.hostIndex).detach()
            return true
        }
    }

    private static func isPromotable(_ record: EndpointRecord) -> Bool {
        record.state == .ready && record.attachMode == AttachMode.tc.rawValue && record.hostIndex > 0
    }
}
