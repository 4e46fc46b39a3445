// SPDX-License-Identifier: Apache-2.0
import NetAddress
import SystemCallSupport

/// A failed nftables operation: what it was for, and what went wrong.
public struct NFTablesError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The few nftables operations swiftpath needs, through the `nft` tool.
public enum NFTables {
    public static func replaceMasquerade(table: String, clusterCIDRs: [IPPrefix]) throws(NFTablesError) {
        var rules: [String] = []
        for (family, keyword) in [(IPAddress.Family.v4, "ip"), (.v6, "ip6")] {
            let set = clusterCIDRs.filter { $0.family == family }.map { "\($0.network)/\($0.length)" }
            if set.isEmpty { continue }
            let list = "{ " + set.joined(separator: ", ") + " }"
            rules.append("\(keyword) saddr \(list) \(keyword) daddr != \(list) masquerade")
        }
        // Declaring then deleting the table makes the load a replacement, atomic in one transaction.
        let script = """
        table inet \(table)
        delete table inet \(table)
        table inet \(table) {
            chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                \(rules.joined(separator: "\n        "))
            }
        }

        """
        try nft(["-f", "-"], stdin: Array(script.utf8), what: "install the masquerade table inet \(table)")
    }

    /// Whether the table holds the masquerade rules `replaceMasquerade` writes for `clusterCIDRs`,
    /// as nft prints them back (a one-element set without braces, elements in its own order).
    /// False when the table is gone (an `nft flush ruleset`) or differs.
    public static func masqueradeMatches(table: String, clusterCIDRs: [IPPrefix]) -> Bool {
        let listed = list(["table", "inet", table])
        guard listed.contains("hook postrouting priority srcnat") else { return false }
        var found: [String: Set<IPPrefix>] = [:]
        for line in listed.split(separator: "\n") where line.contains("masquerade") {
            let words = line.split { $0 == " " || $0 == "\t" || $0 == "{" || $0 == "}" || $0 == "," }.map(String.init)
            guard let keyword = words.first, ["ip", "ip6"].contains(keyword), found[keyword] == nil, words.contains("!=") else { return false }
            found[keyword] = Set(words.compactMap { IPPrefix($0) })
        }
        var wanted: [String: Set<IPPrefix>] = [:]
        for prefix in clusterCIDRs { wanted[prefix.family == .v4 ? "ip" : "ip6", default: []].insert(prefix.networkPrefix) }
        return found == wanted
    }

    public static func deleteTable(_ table: String) throws(NFTablesError) {
        try nft(["delete", "table", "inet", table], stdin: [], what: "delete table inet \(table)", allowMissing: true)
    }

    /// What kube-proxy leaves in the netfilter rules it programs, in either backend that goes
    /// through nf_tables: its own `kube-proxy` tables (nftables mode), or the KUBE-SERVICES chain
    /// of a nat table (iptables and IPVS modes over iptables-nft). Empty without the nft tool.
    public static func kubeProxyTraces() -> [String] {
        var traces: [String] = []
        for line in list(["tables"]).split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard words.count == 3, words[0] == "table" else { continue }
            let (family, name) = (words[1], words[2])
            if name == "kube-proxy" { traces.append("nftables table \(family) kube-proxy") }
            if name == "nat", ["ip", "ip6"].contains(family), list(["table", family, "nat"]).contains("chain KUBE-SERVICES {") {
                traces.append("iptables chain KUBE-SERVICES in table \(family) nat")
            }
        }
        return traces
    }

    /// What `nft list ARGUMENTS` prints; empty when it cannot run.
    private static func list(_ arguments: [String]) -> String {
        guard let path = nftPath, let result = try? Subprocess.run(path, arguments: ["list"] + arguments, environment: environment),
              result.status == 0 else { return "" }
        return String(decoding: result.stdout, as: UTF8.self)
    }

    private static var nftPath: String? { Subprocess.find("nft", in: ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) }
    private static let environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]

    private static func nft(_ arguments: [String], stdin: [UInt8], what: String, allowMissing: Bool = false) throws(NFTablesError) {
        guard let path = nftPath else {
            throw NFTablesError("\(what): masquerading needs the nft tool (nftables)")
        }
        let result: (status: Int32, stdout: [UInt8])
        do { result = try Subprocess.run(path, arguments: arguments, environment: environment, stdin: stdin) } catch {
            throw NFTablesError("\(what): \(error)")
        }
        guard result.status == 0 || allowMissing else { throw NFTablesError("\(what): nft exited with \(result.status)") }
    }
}
