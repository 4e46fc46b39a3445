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

    public static func deleteTable(_ table: String) throws(NFTablesError) {
        try nft(["delete", "table", "inet", table], stdin: [], what: "delete table inet \(table)", allowMissing: true)
    }

    private static func nft(_ arguments: [String], stdin: [UInt8], what: String, allowMissing: Bool = false) throws(NFTablesError) {
        guard let path = Subprocess.find("nft", in: ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) else {
            throw NFTablesError("\(what): masquerading needs the nft tool (nftables)")
        }
        let result: (status: Int32, stdout: [UInt8])
        do { result = try Subprocess.run(path, arguments: arguments, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], stdin: stdin) } catch {
            throw NFTablesError("\(what): \(error)")
        }
        guard result.status == 0 || allowMissing else { throw NFTablesError("\(what): nft exited with \(result.status)") }
    }
}
