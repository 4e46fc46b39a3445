// swift-tools-version:6.1
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

// Link libbpf and its own dependencies statically, so the installed plugin carries them.
// libmnl: see staticExecutable below.
let staticBPF: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "-l:libbpf.a", "-Xlinker", "-l:libelf.a", "-Xlinker", "-l:libz.a"])
]

// The plugin runs on the host, on whatever distribution the node has: it is one static executable
// (glibc, the Swift runtime, FoundationEssentials, libbpf, libelf, zlib and libmnl all inside).
// Debian 12's libmnl-dev carries no libmnl.a; scripts/setup.sh puts the one Debian 13's package
// carries (the same library) in .build-deps.
#if arch(x86_64)
let multiarch = "x86_64-linux-gnu"
#elseif arch(arm64)
let multiarch = "aarch64-linux-gnu"
#endif
let staticArchives = Context.packageDirectory + "/.build-deps/libmnl/usr/lib/" + multiarch
let staticExecutable: [LinkerSetting] = [
    .unsafeFlags(["-static-executable", "-Xlinker", "-L" + staticArchives]),
    // What FoundationEssentials.a itself needs; a static executable gets no autolink for these.
    .linkedLibrary("_FoundationCollections"), .linkedLibrary("_FoundationCShims"),
]

// Linux only: netlink, bpffs, tcx and cgroup v2 are Linux's, and so is every system library below.
let package = Package(
    name: "swiftpath",
    products: [
        .executable(name: "swiftpath", targets: ["swiftpath"]),
        .executable(name: "swiftpath-agent", targets: ["swiftpath-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        // The node agent's: the Kubernetes API over HTTPS with the cluster's own CA, its health and
        // metrics endpoint, kubeconfig files, structured logs. The CNI plugin links none of them.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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

        // Netlink over libmnl: links, veth pairs (born in another netns), addresses, routes, neighbours; listening sockets (sock_diag).
        .target(name: "Netlink", dependencies: [
            "CLibMNL", "NetAddress", "Netns", "SystemCallSupport", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // BPF through libbpf, thin and typed: maps, programs, objects, links, tc filters. Knows nothing of pods.
        .target(name: "BPF", dependencies: [
            "CLibBPF", "CLinux", "SystemCallSupport", .product(name: "SystemPackage", package: "swift-system"),
        ], linkerSettings: staticBPF),

        // The node's own state in bpffs, built on BPF maps: endpoint records, claims, IP leases, service records.
        .target(name: "NodeStore", dependencies: [
            "BPF", "CLibBPF", "CLinux", "NetAddress", "SystemCallSupport", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The nftables swiftpath writes (the masquerade table), through the nft tool.
        .target(name: "NFTables", dependencies: ["NetAddress", "SystemCallSupport"]),

        // kube-proxy at work on the node (its health listener, its netfilter rules), which cannot
        // share a node with swiftpath's host routing: what the agent refuses and `datapath status` reports.
        .target(name: "KubeProxyDetection", dependencies: ["Netlink", "NFTables"]),

        // The datapath model, one part per concern: pods' attachments and endpoints, the service maps,
        // the node-wide attachments and addresses, the translated connections; loading and upgrading the whole.
        .target(name: "Datapath", dependencies: [
            "BPF", "BPFObjects", "NodeStore", "CDatapathABI", "CLibBPF", "CLinux", "NetAddress", "Netlink", "Netns", "NFTables", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // Address management: delegated CNI IPAM plugins and the built-in allocator.
        .target(name: "IPAM", dependencies: [
            "CLinux", "CNIProtocol", "NodeStore", "NetAddress", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The plugin's keys of the network config: written into the conflist by the agent, read by the plugin.
        .target(name: "PluginConfig", dependencies: ["CNIProtocol", "Datapath", "NetAddress", "NodeStore"]),

        // The CNI verbs: add, del, check, gc, status, version.
        .target(name: "SwiftpathPlugin", dependencies: [
            "BPF", "CNIProtocol", "Datapath", "PluginConfig", "Netns", "Netlink", "NodeStore", "IPAM", "NetAddress", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The operator's command line.
        .target(name: "SwiftpathCLI", dependencies: [
            "BPF", "BPFObjects", "NodeStore", "Datapath", "KubeProxyDetection", "NetAddress", "Netlink", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Says what to run when a static archive is missing, before the linker would.
        .plugin(name: "StaticLibraries", capability: .buildTool()),
        .executableTarget(name: "swiftpath", dependencies: [
            "CNIProtocol", "SwiftpathPlugin", "SwiftpathCLI", .product(name: "SystemPackage", package: "swift-system"),
        ], linkerSettings: staticExecutable, plugins: ["StaticLibraries"]),

        // A Kubernetes API client: cluster access (kubeconfig, in-cluster), list and watch, the
        // objects the agent reads.
        .target(name: "KubernetesAPI", dependencies: [
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),

        // The node agent: node-wide state from the Kubernetes API (datapath, plugin binary,
        // conflist, routes to other nodes' pods, the services), health and metrics.
        .target(name: "NodeAgent", dependencies: [
            "BPF", "CNIProtocol", "Datapath", "KubeProxyDetection", "KubernetesAPI", "NetAddress", "Netlink", "NodeStore", "PluginConfig",
            "SystemCallSupport", .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        .executableTarget(name: "swiftpath-agent", dependencies: [
            "NodeAgent", "Datapath", "KubernetesAPI", "NodeStore", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"]),
        .testTarget(name: "CNIProtocolTests", dependencies: ["CNIProtocol"]),
        .testTarget(name: "IPAMTests", dependencies: ["IPAM"]),
        // The Kubernetes API stand-in the agent's tests run against (Tests/Fixtures).
        .target(name: "KubeStandIn", path: "Tests/KubeStandIn"),
        .testTarget(name: "KubernetesAPITests", dependencies: ["KubernetesAPI", "KubeStandIn", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "NodeAgentTests", dependencies: ["CNIProtocol", "NodeAgent", "KubernetesAPI", "NetAddress", "Netlink", "NodeStore", "PluginConfig"]),
        .testTarget(name: "PluginConfigTests", dependencies: ["CNIProtocol", "Datapath", "NetAddress", "PluginConfig"]),
        .testTarget(name: "DatapathTests", dependencies: ["CDatapathABI", "Datapath", "NetAddress", "NodeStore"]),
        .testTarget(name: "NetlinkTests", dependencies: ["CLibMNL", "NetAddress", "Netlink"]),
        .testTarget(name: "NodeStoreTests", dependencies: ["BPF", "NodeStore", "NetAddress"]),
        .testTarget(name: "SwiftpathPluginTests", dependencies: [
            "BPF", "CNIProtocol", "Datapath", "NetAddress", "NFTables", "SwiftpathPlugin", "SystemCallSupport",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "BPFTestObjects", dependencies: ["BPFObjects"], path: "Tests/BPFTestObjects",
                exclude: ["datapath_variant.c", "datapath_small_lb.c", "other_tool.c"], sources: ["BPFTestObjects.swift"], plugins: ["BPFCompiler"]),
        .testTarget(name: "IntegrationTests", dependencies: [
            "BPF", "BPFTestObjects", "NodeStore", "CDatapathABI", "CLibBPF", "Datapath", "KubeStandIn", "NetAddress", "Netlink", "Netns",
            "NodeAgent", "KubernetesAPI", "SystemCallSupport", "PluginConfig", "CNIProtocol",
        ], exclude: ["echo.py", "lbclient.py", "lbserver.py", "rawframes.py", "flood.py", "listenerclient.py"],
        swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
