// SPDX-License-Identifier: Apache-2.0
import BPF
import BPFObjects
import NodeStore
import CLinux
import CDatapathABI
import CLibBPF
import Netns
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The cgroup socket hooks of the load balancer: attached to a cgroup v2 directory (inherited by
/// every cgroup below it), their links pinned at `<store>/socketlb/cg<cgroup id>/<program>`.
extension NodeDatapath {
    /// The datapath's cgroup programs, each with the hook its section names (libbpf's reading of
    /// `SEC("cgroup/connect4")`, as when it attaches by section).
    static let socketHooks: [(program: String, attachType: bpf_attach_type)] =
        BPFObject.datapath.programs(inSectionsStartingWith: "cgroup/").compactMap { hook in
            BPFProgram.attachType(ofSection: hook.section).map { (hook.program, $0) }
        }

    /// Makes sure every socket hook is attached to `cgroup` (a cgroup v2 directory). Cheap when they
    /// are: one access() per hook. Links of other programs on the cgroup stay (multi-program links).
    /// Returns the cgroup's id, which names its hooks' folder.
    @discardableResult
    public func ensureSocketHooks(cgroup: String) throws(DatapathError) -> UInt64 {
        let cgroupID: UInt64
        do { cgroupID = try CgroupV2.id(of: cgroup) } catch { throw .cgroup(error) }
        let folder = "\(layout.path(.socketHookLinks))/cg\(cgroupID)"
        let missing = Self.socketHooks.filter { access("\(folder)/\($0.program)", F_OK) != 0 }
        guard !missing.isEmpty else { return cgroupID }
        let directory: FileDescriptor
        do { directory = try FileDescriptor.open(FilePath(cgroup), .readOnly, options: [.directory, .closeOnExec]) } catch {
            throw .cgroup(SystemCallError("open cgroup \(cgroup)", error as? Errno ?? .current))
        }
        defer { try? directory.close() }
        try bpf { () throws(BPFError) in
            try makeFolder(layout.path(.socketHookLinks))
            try makeFolder(folder)
            for hook in missing {
                try BPFLink.attachCgroup(program(hook.program), cgroup: directory, attachType: hook.attachType)
                    .pin(at: "\(folder)/\(hook.program)")
            }
        }
        return cgroupID
    }

    /// Detaches the socket hooks from the cgroup with id `cgroupID` (gone or not).
    public func detachSocketHooks(cgroupID: UInt64) throws(BPFError) {
        try removeLinkFolder("\(layout.path(.socketHookLinks))/cg\(cgroupID)")
    }

    /// Whether the hooks leave the sockets of the calling thread's netns (the node's) alone.
    public func configureSocketLB(skipNodeNetns: Bool) throws(DatapathError) {
        let cookie: UInt64
        do { cookie = try NetworkNamespace.currentCookie() } catch { throw .cgroup(error) }
        try bpf { () throws(BPFError) in
            let config = try map(Layouts.lbConfig)
            let wanted = sp_lb_config(host_netns_cookie: cookie, flags: skipNodeNetns ? SP_LB_SKIP_HOST_NETNS : 0, reserved: 0)
            let current = try config.lookup(UInt32(0), as: sp_lb_config.self)
            guard current?.host_netns_cookie != wanted.host_netns_cookie || current?.flags != wanted.flags else { return }
            try config.upsert(UInt32(0), wanted)
        }
    }
}
