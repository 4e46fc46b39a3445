// swift-tools-version:6.1
import PackageDescription

// Link libbpf and its own dependencies statically, so the installed plugin carries them.
// libmnl stays dynamic: Debian ships no libmnl.a, and libmnl0 comes with iproute2 on every node.
let staticBPF: [LinkerSetting] = [
    .unsafeFlags(["-Xlinker", "-l:libbpf.a", "-Xlinker", "-l:libelf.a", "-Xlinker", "-l:libz.a"])
]

let package = Package(
    name: "swiftpath",
    platforms: [.macOS(.v15)],
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

        // Addresses, prefixes and MACs: the vocabulary every layer shares.
        .target(name: "NetAddress"),

        // The CNI protocol: environment, network config, results in every version, errors.
        .target(name: "CNIProtocol", dependencies: ["NetAddress"]),

        // Entering network namespaces and writing their sysctls.
        .target(name: "Netns", dependencies: ["CLinux", .product(name: "SystemPackage", package: "swift-system")]),

        // rtnetlink over libmnl: links, veth pairs (born in another netns), addresses, routes, neighbours.
        .target(name: "Netlink", dependencies: [
            "CLibMNL", "NetAddress", "Netns", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The node's shared state in bpffs: endpoint records and IP leases in pinned BPF maps.
        .target(name: "EndpointStore", dependencies: [
            "CLibBPF", "CLinux", "NetAddress", .product(name: "SystemPackage", package: "swift-system"),
        ], linkerSettings: staticBPF),

        // Address management: delegated CNI IPAM plugins and the built-in allocator.
        .target(name: "IPAM", dependencies: [
            "CLinux", "CNIProtocol", "EndpointStore", "NetAddress",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The CNI verbs: add, del, check, gc, status, version.
        .target(name: "SwiftpathPlugin", dependencies: [
            "CNIProtocol", "Netns", "Netlink", "EndpointStore", "IPAM", "NetAddress",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),

        // The operator's command line.
        .target(name: "SwiftpathCLI", dependencies: [
            "CNIProtocol", "EndpointStore", "NetAddress", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "swiftpath", dependencies: [
            "CNIProtocol", "SwiftpathPlugin", "SwiftpathCLI", .product(name: "SystemPackage", package: "swift-system"),
        ]),

        .testTarget(name: "NetAddressTests", dependencies: ["NetAddress"]),
        .testTarget(name: "CNIProtocolTests", dependencies: ["CNIProtocol"]),
        .testTarget(name: "IPAMTests", dependencies: ["IPAM"]),
        .testTarget(name: "IntegrationTests", swiftSettings: [.swiftLanguageMode(.v5)]),
    ]
)
