// SPDX-License-Identifier: Apache-2.0
import NodeStore

/// What the plugin hands to the node agent, and how: the whole of their protocol. The plugin never
/// depends on the agent. It hands work over only while it finds the agent present (a lock the
/// agent holds), each handoff a folder of the store the plugin writes and the agent works off;
/// without the agent the plugin does the work itself, as if there were none.
///
/// - **Presence**: the agent keeps the store's `agent` folder locked (flock, exclusive) for as
///   long as it runs, and the kernel drops the lock however the agent ends
///   (`EndpointStore.announceAgent`); a plugin run looks with a shared lock
///   (`EndpointStore.isAgentPresent`, asked before the datapath is opened).
/// - **Promotions** (`promotions/<host device>`): attaching a tcx program waits for an RCU grace
///   period under the RTNL lock (`tcx_entry_sync()`), most of what an ADD would cost. With the
///   agent present, ADD attaches the pod program with tc, which waits for none, and asks for the
///   pod's promotion; the agent attaches the tcx link off ADD's path and takes the filter away.
///   Both run the same program on the same maps, and tcx runs before tc, so the pod's packets see
///   no change. Without the agent the pod keeps its tc filter, as `attachMode: tc` would.
/// - **Retirement** (`retired/<retired name>`): a DEL that finds the agent present does not delete
///   its veth, which would hold it for the kernel's grace periods: it retires the veth. Both ends
///   go down at once (the kernel drops their routes and neighbour entries), into a device group of
///   their own (`RetiredVeths.deviceGroup`), renamed so that the next ADD of the same attachment
///   finds its names free. Most retired veths then go with the pod's netns (the kernel deletes a
///   veth when it destroys the netns of either end, off anyone's critical path); the agent deletes
///   the rest as one group, behind one set of grace periods however many there are. The tcx link
///   of a retired veth stays pinned under its marker for as long as its device lives: a link
///   released from a live device detaches with a grace period of its own. Once the device is gone
///   the link is defunct and unpinning it costs nothing.
public struct AgentHandoff: DatapathPart {
    let pins: DatapathPins

    var pods: PodAttachments { PodAttachments(pins: pins) }
}
