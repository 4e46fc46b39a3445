// SPDX-License-Identifier: Apache-2.0
import BPF
import Datapath
import NodeStore

/// The connection sweep's handle on the datapath, owned by the sweeping task: opened once (the only
/// time the store's lock is taken) and again when another build of the datapath was loaded, whose
/// maps may be others.
final class ConnectionSweeper {
    private let storeRoot: String
    private var datapath: Datapath?
    private var build: UInt64?

    init(storeRoot: String) { self.storeRoot = storeRoot }

    /// Removes what is idle past `timeouts`; nil while the node has no datapath yet.
    func sweep(_ timeouts: ConnectionTimeouts) throws(BPFError) -> ConnectionSweep? {
        guard let loaded = try Datapath.loadedBuild(storeRoot: storeRoot) else { return nil }
        if datapath == nil || build != loaded {
            datapath = try EndpointStore.openExisting(root: storeRoot).flatMap(Datapath.openExisting)
            build = loaded
        }
        return try datapath?.connections.expire(timeouts)
    }
}
