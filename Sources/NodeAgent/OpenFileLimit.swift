// SPDX-License-Identifier: Apache-2.0
import Glibc
import SystemCallSupport
import SystemPackage

/// The agent's descriptors: its listeners, a watch per resource, the store's maps and links, a
/// netns per pod it terminates sockets in. The soft limit a container starts with (often 1024)
/// is far below what the hard limit lets a process have.
public enum OpenFileLimit {
    /// Raises the soft RLIMIT_NOFILE to the hard one; the limits now in force.
    public static func raiseToHard() throws(SystemCallError) -> (soft: UInt64, hard: UInt64) {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { throw SystemCallError("read the open file limit", .current) }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            guard setrlimit(resource, &raised) == 0 else {
                throw SystemCallError("raise the open file limit from \(limit.rlim_cur) to \(limit.rlim_max)", .current)
            }
            limit = raised
        }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }
}
