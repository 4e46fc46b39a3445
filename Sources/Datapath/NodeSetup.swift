// SPDX-License-Identifier: Apache-2.0
import BPFObjects
import BPF
import NodeStore
import NetAddress

/// What the node's datapath must look like, node-wide: the state every ADD makes sure of (cheaply,
/// once it is there) and that a long-running agent can keep on a schedule of its own.
public struct NodeSetup: Sendable {
    /// The devices whose ingress runs the uplink program.
    public var uplinks: [(name: String, index: Int32)]
    public var attachPolicy: AttachPolicy
    /// Masquerade what leaves `clusterCIDRs`.
    public var masquerade: Bool
    public var clusterCIDRs: [IPPrefix]
    /// The cgroup v2 directory of the node-wide socket hooks; nil for none (socket LB off, or per pod).
    public var socketCgroup: String?
    /// Whether the socket LB is on at all (node-wide or per pod).
    public var socketLB: Bool
    /// Whether the node's own processes are balanced too.
    public var balanceNodeProcesses: Bool

    public init(uplinks: [(name: String, index: Int32)], attachPolicy: AttachPolicy, masquerade: Bool, clusterCIDRs: [IPPrefix],
                socketCgroup: String?, socketLB: Bool, balanceNodeProcesses: Bool) {
        self.uplinks = uplinks
        self.attachPolicy = attachPolicy
        self.masquerade = masquerade
        self.clusterCIDRs = clusterCIDRs
        self.socketCgroup = socketCgroup
        self.socketLB = socketLB
        self.balanceNodeProcesses = balanceNodeProcesses
    }

    /// Makes the node so: the datapath loaded (or upgraded, or repaired), the uplinks attached,
    /// masquerading and the socket hooks as set. Returns the datapath and how each uplink is
    /// attached. Node-wide state is checked and completed under the store's lock: two first ADDs
    /// at once must not both attach (and both pin) the same uplink or cgroup hook.
    public func ensure(store: EndpointStore, object: BPFObject = .datapath) throws(DatapathError)
        -> (datapath: Datapath, uplinks: [ProgramAttachment]) {
        let datapath = try bpf { () throws(BPFError) in try Datapath.open(store: store, object: object) }
        let attachments = try bpf { () throws(BPFError) in
            try store.withLock { () throws(DatapathError) in
                let attachments = try bpf { () throws(BPFError) in try datapath.node.ensureUplinks(uplinks, policy: attachPolicy) }
                try datapath.node.configureMasquerade(enabled: masquerade, clusterCIDRs: clusterCIDRs)
                if let socketCgroup { try datapath.node.ensureSocketHooks(cgroup: socketCgroup) }
                if socketLB { try datapath.node.configureSocketLB(skipNodeNetns: !balanceNodeProcesses) }
                return attachments
            }
        }
        return (datapath, try attachments.get())
    }
}
