// SPDX-License-Identifier: Apache-2.0
import CNIProtocol
import SwiftpathCLI
import SwiftpathPlugin
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A runtime runs us with CNI_COMMAND set (even empty: that is a runtime's mistake, answered with a
/// CNI error); anyone else gets the operator's CLI.
if getenv("CNI_COMMAND") != nil {
    var stdin: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while let count = try? chunk.withUnsafeMutableBytes({ try FileDescriptor.standardInput.read(into: $0) }), count > 0 {
        stdin += chunk[..<count]
    }
    let (output, status) = Plugin.main(environment: processEnvironment(), stdin: stdin)
    _ = try? FileDescriptor.standardOutput.writeAll(output + (output.isEmpty ? [] : [0x0a]))
    exit(status)
} else {
    SwiftpathCommand.main()
}
