// SPDX-License-Identifier: Apache-2.0
import BPF
import CNIProtocol
import Datapath
import NodeStore
import SystemCallSupport

/// Where the lower layers' errors become CNI errors, each with the code of the part that failed.
/// The layers below throw their own typed errors with their context; nothing below the plugin
/// knows CNI's codes.
extension CNIError {
    init(netlink error: SystemCallError) {
        self.init(.netlinkFailure, "netlink request failed", details: error.description)
    }

    init(system error: SystemCallError) {
        self.init(.ioFailure, "system call failed", details: error.description)
    }

    /// A BPF failure: a program or attachment the kernel refused, or a newer node's datapath, is
    /// the datapath's; anything else (maps, pins, records) is the store's.
    init(bpf error: BPFError) {
        switch error.kind {
        case .program, .newerBuild: self.init(.datapathFailure, "BPF datapath failed", details: error.description)
        case .system, .missingPin, .layoutMismatch, .untrusted: self.init(.storeFailure, "swiftpath store failed", details: error.description)
        }
    }

    init(datapath error: DatapathError) {
        switch error {
        case .bpf(let error): self.init(bpf: error)
        case .masquerade(let error): self.init(.masqueradeFailure, "masquerading (nftables) failed", details: error.description)
        case .cgroup(let error): self.init(.cgroupFailure, "socket LB cgroup failed", details: error.description)
        case .netlink(let error): self.init(netlink: error)
        }
    }
}

extension Plugin {
    /// Runs BPF work (datapath or store) in a verb.
    func bpfCall<T>(_ body: () throws(BPFError) -> T) throws(CNIError) -> T {
        do { return try body() } catch { throw CNIError(bpf: error) }
    }
}

extension EndpointStore {
    /// `withLock` for a verb's step: the body's CNI error, or the lock's failure as one.
    func withLockOrFail<T>(_ body: () throws(CNIError) -> T) throws(CNIError) -> T {
        let outcome: Result<T, CNIError>
        do { outcome = try withLock(body) } catch { throw CNIError(bpf: error) }
        return try outcome.get()
    }
}
