// SPDX-License-Identifier: Apache-2.0
import BPF
import NodeStore
import CDatapathABI

/// The paths a packet can take, named as `swiftpath stats` prints them.
public enum PacketPath: UInt32, CaseIterable, Sendable {
    case peerRedirect = 1
    case fibRedirect
    case neighRedirect
    case stackNotIP
    case stackICMPv6ND
    case stackNotForwarded
    case stackMasquerade
    case stackTTL
    case stackIPOptions
    case stackFragment
    case stackIPv6Extension
    case stackFIBOther
    case stackNotEndpoint
    case dropSpoofedSource
    case dropSpoofedMAC
    case dropMalformed
    case stackNotUnicast
    case dropOtherHost
    case dropMartianSource

    public var name: String {
        switch self {
        case .peerRedirect: "redirect_peer"
        case .fibRedirect: "redirect_fib"
        case .neighRedirect: "redirect_neigh"
        case .stackNotIP: "stack_not_ip"
        case .stackICMPv6ND: "stack_icmp6_nd"
        case .stackNotForwarded: "stack_not_forwarded"
        case .stackMasquerade: "stack_masquerade"
        case .stackTTL: "stack_ttl"
        case .stackIPOptions: "stack_ip_options"
        case .stackFragment: "stack_fragment"
        case .stackIPv6Extension: "stack_ipv6_extension"
        case .stackFIBOther: "stack_fib_other"
        case .stackNotEndpoint: "stack_not_endpoint"
        case .dropSpoofedSource: "drop_spoofed_source"
        case .dropSpoofedMAC: "drop_spoofed_mac"
        case .dropMalformed: "drop_malformed"
        case .stackNotUnicast: "stack_not_unicast"
        case .dropOtherHost: "drop_other_host"
        case .dropMartianSource: "drop_martian_source"
        }
    }
}

public struct PathCounter: Equatable, Sendable {
    public let ifindex: Int32
    public let path: PacketPath
    public let packets: UInt64
    public let bytes: UInt64
}

extension Datapath {
    /// Every counter, summed over CPUs.
    public func counters() throws(BPFError) -> [PathCounter] {
        var result: [PathCounter] = []
        for key in try counterMap.keys(as: sp_counter_key.self) {
            guard let path = PacketPath(rawValue: key.path) else { continue }
            let perCPU = try counterMap.lookupPerCPU(key, as: sp_counter.self)
            result.append(PathCounter(ifindex: Int32(key.ifindex), path: path,
                                      packets: perCPU.reduce(0) { $0 + $1.packets }, bytes: perCPU.reduce(0) { $0 + $1.bytes }))
        }
        return result.sorted { ($0.ifindex, $0.path.rawValue) < ($1.ifindex, $1.path.rawValue) }
    }

    func forgetCounters(ifindex: Int32) throws(BPFError) {
        for path in PacketPath.allCases {
            try counterMap.delete(sp_counter_key(ifindex: UInt32(ifindex), path: path.rawValue))
        }
    }
}
