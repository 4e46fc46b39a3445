// SPDX-License-Identifier: Apache-2.0
import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A BPF link: an owned attachment of a program to a hook. A link lives while a descriptor or a
/// bpffs pin holds it, so the short-lived plugin pins every link it makes.
public final class BPFLink {
    let descriptor: OwnedDescriptor

    init(descriptor: FileDescriptor) { self.descriptor = OwnedDescriptor(descriptor) }

    public enum TCXDirection: Sendable {
        case ingress
        case egress

        var attachType: bpf_attach_type {
            switch self {
            case .ingress: bpf_attach_type(rawValue: SWIFTPATH_BPF_TCX_INGRESS.rawValue)
            case .egress: bpf_attach_type(rawValue: SWIFTPATH_BPF_TCX_EGRESS.rawValue)
            }
        }
    }

    /// Attaches `program` at the tcx hook of device `ifindex`, after the programs already there,
    /// which keep running (tcx is multi-program: nobody else's attachment is touched).
    public static func attachTCX(_ program: BPFProgram, ifindex: Int32,
                                 direction: TCXDirection) throws(BPFError) -> BPFLink {
        let fd = bpf_link_create(program.descriptor.rawValue, ifindex, direction.attachType, nil)
        try libbpf(fd, "attach tcx \(direction) on ifindex \(ifindex)", kind: .program)
        return BPFLink(descriptor: FileDescriptor(rawValue: fd))
    }

    /// Attaches `program` to a cgroup v2 directory's hook (`attachType`), as a multi-program link.
    public static func attachCgroup(_ program: BPFProgram, cgroup: FileDescriptor,
                                    attachType: bpf_attach_type) throws(BPFError) -> BPFLink {
        let fd = bpf_link_create(program.descriptor.rawValue, cgroup.rawValue, attachType, nil)
        try libbpf(fd, "attach cgroup hook \(attachType.rawValue)", kind: .program)
        return BPFLink(descriptor: FileDescriptor(rawValue: fd))
    }

    /// A BPF_TRACE_ITER link of an iterator program (iter/tcp, iter/udp, ...).
    public static func attachIterator(_ program: BPFProgram) throws(BPFError) -> BPFLink {
        let fd = bpf_link_create(program.descriptor.rawValue, 0, BPF_TRACE_ITER, nil)
        try libbpf(fd, "create iterator link")
        return BPFLink(descriptor: FileDescriptor(rawValue: fd))
    }

    /// Runs the iterator once to its end, in the netns (and for the objects) of the calling thread.
    public func iterate() throws(BPFError) {
        let fd = bpf_iter_create(descriptor.rawValue)
        try libbpf(fd, "create iterator")
        let iterator = FileDescriptor(rawValue: fd)
        defer { try? iterator.close() }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count: Int
            do { count = try buffer.withUnsafeMutableBytes { try iterator.read(into: $0) } } catch {
                throw BPFError("read iterator", error as? Errno)
            }
            if count == 0 { return }
        }
    }

    /// The link pinned at `path`, or nil when nothing is pinned there.
    public static func pinned(at path: String) throws(BPFError) -> BPFLink? {
        try openPinned(path, "link").map { BPFLink(descriptor: $0) }
    }

    public func pin(at path: String) throws(BPFError) {
        let status = bpf_obj_pin(descriptor.rawValue, path)
        try libbpf(status, "pin link at \(path)")
    }

    /// Swaps the program behind the link in place (BPF_LINK_UPDATE): no moment without a program.
    public func update(to program: BPFProgram) throws(BPFError) {
        let status = bpf_link_update(descriptor.rawValue, program.descriptor.rawValue, nil)
        try libbpf(status, "update link")
    }

    /// What the kernel says of the link. A tcx link whose device is gone reports ifindex 0.
    public var info: (id: UInt32, programID: UInt32, ifindex: UInt32) {
        var info = bpf_link_info()
        var length = UInt32(MemoryLayout<bpf_link_info>.size)
        _ = bpf_obj_get_info_by_fd(descriptor.rawValue, &info, &length)
        // tcx reports {ifindex, attach_type} in the union, where netns links keep {ino, type}.
        return (info.id, info.prog_id, info.netns.netns_ino)
    }

    /// Removes the pin `name` of `folder`; the attachment goes when nothing else holds the link.
    /// Anything there that is not a pin (a symlink) is left alone and refused.
    public static func unpin(_ name: String, in folder: PinFolder) throws(BPFError) {
        guard try folder.removePin(name) else {
            throw BPFError("\(folder.path)/\(name) is not a pin: left alone", kind: .untrusted)
        }
    }
}
