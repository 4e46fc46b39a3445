// SPDX-License-Identifier: Apache-2.0
import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A cls_bpf filter in direct-action mode on a device's clsact ingress: the legacy way to run a
/// tc program, where tcx is missing. A filter is named by its handle and priority, so its owner can
/// find and remove exactly it.
public struct TCFilter: Sendable {
    public let ifindex: Int32
    public let handle: UInt32
    public let priority: UInt32

    public init(ifindex: Int32, handle: UInt32, priority: UInt32) {
        self.ifindex = ifindex
        self.handle = handle
        self.priority = priority
    }

    /// Creates clsact if needed and installs (or replaces) the filter running `program`.
    public func attach(_ program: BPFProgram) throws(BPFError) {
        var hook = self.hook
        let created = bpf_tc_hook_create(&hook)
        guard created == 0 || -created == EEXIST else {
            throw BPFError("create clsact on ifindex \(ifindex)", libbpfErrno(created), kind: .program)
        }
        var options = self.options
        options.prog_fd = program.descriptor.rawValue
        options.flags = UInt32(BPF_TC_F_REPLACE.rawValue)
        let attached = bpf_tc_attach(&hook, &options)
        try libbpf(attached, "attach cls_bpf on ifindex \(ifindex)", kind: .program)
    }

    /// The id of the program the filter runs, or nil when there is no such filter.
    public func programID() -> UInt32? {
        var hook = self.hook
        var options = self.options
        return bpf_tc_query(&hook, &options) == 0 ? options.prog_id : nil
    }

    /// Removes the filter; the qdisc and other filters stay.
    public func detach() {
        var hook = self.hook
        var options = self.options
        _ = bpf_tc_detach(&hook, &options)
    }

    private var hook: bpf_tc_hook {
        var hook = bpf_tc_hook()
        hook.sz = libbpfOptionsSize(\bpf_tc_hook.parent)
        hook.ifindex = ifindex
        hook.attach_point = BPF_TC_INGRESS
        return hook
    }

    private var options: bpf_tc_opts {
        var options = bpf_tc_opts()
        options.sz = libbpfOptionsSize(\bpf_tc_opts.priority)
        options.handle = handle
        options.priority = priority
        return options
    }
}
