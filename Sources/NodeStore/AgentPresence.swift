// SPDX-License-Identifier: Apache-2.0
import BPF
import SystemCallSupport
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The node agent's presence, as the plugin sees it: the agent keeps the store's `agent` folder
/// locked (flock, exclusive) for as long as it runs, and the kernel drops the lock however the
/// agent ends. A plugin run that finds the lock held may leave work that costs it a kernel grace
/// period to the agent (a DEL's veth, retired rather than deleted); one that does not find it does
/// everything itself, as if there were no agent at all.
public final class AgentPresence {
    private let descriptor: OwnedDescriptor

    fileprivate init(_ descriptor: FileDescriptor) { self.descriptor = OwnedDescriptor(descriptor) }
}

extension EndpointStore {
    var agentFolder: String { layout.path(.agent) }

    /// Announces the agent for as long as the value lives; nil while another agent holds the store
    /// (a rolling update's old pod still ending) or a plugin run is looking.
    public func announceAgent() throws(BPFError) -> AgentPresence? {
        guard mkdir(agentFolder, 0o700) == 0 || Errno.current == .fileExists else { throw BPFError("create \(agentFolder)", .current) }
        let descriptor = try openAgentFolder()
        guard flock(descriptor.rawValue, LOCK_EX | LOCK_NB) == 0 else {
            let error = Errno.current
            try? descriptor.close()
            if error == .wouldBlock { return nil }
            throw BPFError("lock \(agentFolder)", error)
        }
        return AgentPresence(descriptor)
    }

    /// Whether a live agent holds the store. Plugin runs look with shared locks, so that they
    /// never mistake one another for the agent.
    public func isAgentPresent() -> Bool {
        guard let descriptor = try? openAgentFolder() else { return false }
        defer { try? descriptor.close() }
        if flock(descriptor.rawValue, LOCK_SH | LOCK_NB) == 0 { return false }
        return Errno.current == .wouldBlock
    }

    private func openAgentFolder() throws(BPFError) -> FileDescriptor {
        do { return try FileDescriptor.open(FilePath(agentFolder), .readOnly, options: [.directory, .closeOnExec]) } catch {
            throw BPFError("open \(agentFolder)", error as? Errno)
        }
    }
}
