// SPDX-License-Identifier: Apache-2.0
import CLibBPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A loaded, verified BPF program, held by a descriptor (its own, or one opened from a pin).
public final class BPFProgram {
    let descriptor: OwnedDescriptor

    init(descriptor: FileDescriptor) { self.descriptor = OwnedDescriptor(descriptor) }

    /// The program pinned at `path`, or nil when nothing is pinned there.
    /// The attach type libbpf reads from a program's section name ("cgroup/connect4"), or nil
    /// for a section that names none.
    public static func attachType(ofSection section: String) -> bpf_attach_type? {
        var attachType = bpf_attach_type(rawValue: 0)
        return libbpf_attach_type_by_name(section, &attachType) == 0 ? attachType : nil
    }

    public static func pinned(at path: String) throws(BPFError) -> BPFProgram? {
        try openPinned(path, "program").map { BPFProgram(descriptor: $0) }
    }

    /// Pins the program at `path`, atomically replacing what was pinned there before (pin beside,
    /// then rename over), so a concurrent reader sees the old program or the new, never nothing.
    public func pin(at path: String) throws(BPFError) {
        let staging = path + "_staging"
        unlink(staging)
        let status = bpf_obj_pin(descriptor.rawValue, staging)
        try libbpf(status, "pin program at \(staging)")
        guard rename(staging, path) == 0 else {
            let error = Errno.current
            unlink(staging)
            throw BPFError("move program pin to \(path)", error)
        }
    }

    public var id: UInt32 { info.id }

    /// Translated and JIT-compiled sizes, in bytes.
    public var sizes: (xlated: Int, jited: Int) { (Int(info.xlated_prog_len), Int(info.jited_prog_len)) }

    private var info: bpf_prog_info {
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        _ = bpf_obj_get_info_by_fd(descriptor.rawValue, &info, &length)
        return info
    }

    /// Runs the program once on `packet` (BPF_PROG_TEST_RUN) as if it arrived on `ifindex`.
    /// Returns the verdict and the packet as the program left it.
    public func testRun(packet: [UInt8], ifindex: Int32) throws(BPFError) -> (verdict: Int32, packet: [UInt8]) {
        var input = packet
        var output = [UInt8](repeating: 0, count: packet.count + 256)
        var context = __sk_buff()
        context.ifindex = UInt32(ifindex)
        var options = bpf_test_run_opts()
        options.sz = libbpfOptionsSize(\bpf_test_run_opts.batch_size)
        options.repeat = 1
        let status = input.withUnsafeMutableBytes { inputBytes in
            output.withUnsafeMutableBytes { outputBytes in
                withUnsafeMutableBytes(of: &context) { contextBytes in
                    options.data_in = UnsafeRawPointer(inputBytes.baseAddress)
                    options.data_size_in = UInt32(inputBytes.count)
                    options.data_out = outputBytes.baseAddress
                    options.data_size_out = UInt32(outputBytes.count)
                    options.ctx_in = UnsafeRawPointer(contextBytes.baseAddress)
                    options.ctx_size_in = UInt32(contextBytes.count)
                    return bpf_prog_test_run_opts(descriptor.rawValue, &options)
                }
            }
        }
        try libbpf(status, "test run")
        return (Int32(bitPattern: options.retval), Array(output.prefix(Int(options.data_size_out))))
    }
}
