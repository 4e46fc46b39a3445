// swift-tools-version:6.1
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

// Link libbpf and its own dependencies statically, so the installed plugin carries them.
// libmnl stays dynamic: Debian ships no libmnl.a, and libmnl0 comes with iproute2 on every node.
let staticBPF: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "-l:libbpf.a", "-Xlinker", "-l:libelf.a", "-Xlinker", "-l:libz.a"])
]

// Linux only: netlink, bpffs, tcx and cgroup v2 are Linux's, and so is every system library below.
let package = Package(
    name: "swiftpath",
    products: [
        .executable(name: "swiftpath", targets: ["swiftpath"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // System libraries.
        .systemLibrary(name: "CLibBPF", providers: [.apt(["libbpf-dev", "libelf-dev", "zlib1g-dev"])]),
        .systemLibrary(name: "CLibMNL", pkgConfig: "libmnl", providers: [.apt(["libmnl-dev"])]),

        // The Linux calls Glibc's overlay lacks (setns, statfs, mount, memfd_create).
        .target(name: "CLinux"),

        // The BPF datapath: C in bpf/, compiled by the BPFCompiler plugin and embedded in the binary.
        .plugin(name: "BPFCompiler", capability: .buildTool(), dependencies: ["bpf-embed"]),
        // Links a BPF object's per-hook files with libbpf's static linker (the host's libbpf: a build tool).
        .executableTarget(name: "bpf-embed", dependencies: ["CLibBPF"], path: "Tools/bpf-embed", linkerSettings: [.linkedLibrary("bpf")]),
        .target(name: "BPFObjects", path: "bpf", exclude: ["datapath", "terminate.c", "lib", "abi", "include"], sources: ["BPFObject.swift"],
                plugins: ["BPFCompiler"]),
        // The layout of the datapath's maps, shared by the BPF C and the Swift loader.
        .target(name: "CDatapathABI", path: "bpf/abi"),

        // Errors of system calls, carrying errno and what the call was for; running a program.
        .target(name: "SystemCallSupport", dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")]),

        // Addresses, prefixes and MACs: the vocabulary every layer shares.
        .target(name: "NetAddress"),

        // The CNI protocol: environment, network config, results in every version, errors.
        .target(name: "CNIProtocol", dependencies: ["NetAddress"]),

        // Entering network namespaces and writing their sysctls.
        .target(name: "Netns", dependencies: ["CLinux", "SystemCallSupport", .product(name: "SystemPackage", package: "swift-system")]),

        // rtnetlink over libmnl: links, veth pairs (born in another netns), addresses, routes, neighbours.
        .target(name: "Netlink", dependencies: [
            "CLibMNL", "NetAddress", "Netns", "SystemCallSupport", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // BPF through libbpf, thin and typed: maps, programs, objects, links, tc filters. Knows nothing of pods.
        .target(name: "BPF", dependencies: [
            "CLibBPF", "SystemCallSupport", .product(name: "SystemPackage", package: "swift-system"),
        ], linkerSettings: staticBPF),

        // The node's own state in bpffs, built on BPF maps: endpoint records, claims, IP leases, service records.
        .target(name: "NodeStore", dependencies: [
            "BPF", "CLibBPF", "CLinux", "NetAddress", "SystemCallSupport", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The nftables swiftpath writes (the masquerade table), through the nft tool.
        .target(name: "NFTables", dependencies: ["NetAddress", "SystemCallSupport"]),

        // The datapath model: loading and upgrading the programs, endpoints in the maps, attachments, counters.
        .target(name: "Datapath", dependencies: [
            "BPF", "BPFObjects", "NodeStore", "CDatapathABI", "CLibBPF", "CLinux", "NetAddress", "Netns", "NFTables", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // Address management: delegated CNI IPAM plugins and the built-in allocator.
        .target(name: "IPAM", dependencies: [
            "CLinux", "CNIProtocol", "NodeStore", "NetAddress", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The CNI verbs: add, del, check, gc, status, version.
        .target(name: "SwiftpathPlugin", dependencies: [
            "BPF", "CNIProtocol", "Datapath", "Netns", "Netlink", "NodeStore", "IPAM", "NetAddress", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The operator's command line.
        .target(name: "SwiftpathCLI", dependencies: [
            "BPF", "BPFObjects", "NodeStore", "Datapath", "NetAddress", "Netlink", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "swiftpath", dependencies: [
            "CNIProtocol", "SwiftpathPlugin", "SwiftpathCLI", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"]),
        .testTarget(name: "CNIProtocolTests", dependencies: ["CNIProtocol"]),
        .testTarget(name: "IPAMTests", dependencies: ["IPAM"]),
        .testTarget(name: "NodeStoreTests", dependencies: ["BPF", "NodeStore", "NetAddress"]),
        .testTarget(name: "SwiftpathPluginTests", dependencies: [
            "BPF", "CNIProtocol", "Datapath", "NetAddress", "NFTables", "SwiftpathPlugin", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "BPFTestObjects", dependencies: ["BPFObjects"], path: "Tests/BPFTestObjects",
                exclude: ["datapath_variant.c", "datapath_small_lb.c", "other_tool.c"], sources: ["BPFTestObjects.swift"], plugins: ["BPFCompiler"]),
        .testTarget(name: "IntegrationTests", dependencies: [
            "BPF", "BPFTestObjects", "NodeStore", "CDatapathABI", "CLibBPF", "Datapath", "NetAddress", "Netlink", "Netns", "SystemCallSupport",
        ], exclude: ["echo.py", "lbclient.py", "lbserver.py"], swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
