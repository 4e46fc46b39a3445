// SPDX-License-Identifier: Apache-2.0
import CLinux
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Facts of the cgroup v2 hierarchy that the socket hooks attach to.
public enum CgroupV2 {
    /// Where this host mounts cgroup v2 (on a hybrid host, /sys/fs/cgroup/unified), or nil.
    public static func mountPoint() -> String? {
        guard let file = fopen("/proc/self/mounts", "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(separator: " ")
            if fields.count > 2, fields[2] == "cgroup2" { return String(fields[1]) }
        }
        return nil
    }

    /// Whether `path` is a cgroup v2 directory (a cgroup, not one of its files).
    public static func isCgroup(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR && clinux_fs_magic_at(path) == CGROUP2_SUPER_MAGIC
    }

    /// The id of a cgroup v2 directory: its inode, stable across renames.
    public static func id(of cgroup: String) throws(SystemCallError) -> UInt64 {
        var info = stat()
        guard stat(cgroup, &info) == 0 else { throw SystemCallError("stat cgroup \(cgroup)", .current) }
        return UInt64(info.st_ino)
    }
}

extension NetworkNamespace {
    /// The cookie of the calling thread's netns (SO_NETNS_COOKIE of a socket made in it): what
    /// `bpf_get_netns_cookie()` says in a program run for that netns.
    public static func currentCookie() throws(SystemCallError) -> UInt64 {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError("socket for the netns cookie", .current) }
        defer { close(fd) }
        var cookie: UInt64 = 0
        var length = socklen_t(MemoryLayout<UInt64>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &length) == 0 else {
            throw SystemCallError("read the netns cookie", .current)
        }
        return cookie
    }
}
