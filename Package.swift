// swift-tools-version:6.0
// stepguard: a runtime enforcer for CI/CD pipeline steps.
// Layout: a thin `stepguard` executable over one library per domain; C libraries behind
// system-library targets (module.modulemap + shim.h). See README.md and ../shared/DESIGN.md.
import PackageDescription

let package = Package(
    name: "stepguard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "stepguard", targets: ["stepguard"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.98.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.0"),
    ],
    targets: [
        // MARK: C libraries (Debian: libgit2-dev, libcurl4-openssl-dev, libvectorscan-dev, libpcre2-dev, zlib1g-dev)
        // libgit2 and libcurl are opened at run time (dlopen) by small forwarding shims, so that
        // `stepguard run` does not load them and their dependencies on every start (see CLazyLoad).
        .target(name: "CLazyLoad"),
        .target(name: "CGit2", dependencies: ["CLazyLoad"]),
        .target(name: "CCurl", dependencies: ["CLazyLoad"]),
        .systemLibrary(name: "CVectorscan", pkgConfig: "libhs", providers: [.apt(["libvectorscan-dev"])]),
        .systemLibrary(name: "CPCRE2", pkgConfig: "libpcre2-8", providers: [.apt(["libpcre2-dev"])]),
        // zlib: `scan --staged` reads loose and packed git objects itself (see StagedIndexDiff).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // libyaml: the YAML reader of policies, workflows, catalogs and rules (see StepGuardYAML).
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),

        // MARK: Domain libraries
        // Vocabulary and strict readers that several domains share (JSON, JWT parts, base64url,
        // credential lifetimes, redaction and the detector seam, edit distance, entropy).
        .target(name: "StepGuardCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // YAML over libyaml: node trees with line:column marks, no Foundation (so no ICU data in the binary).
        .target(name: "StepGuardYAML", dependencies: ["CYAML"]),
        .target(
            name: "StepGuardPolicy",
            dependencies: ["StepGuardCore", "StepGuardYAML"]
        ),
        .target(name: "StepGuardAudit", dependencies: ["StepGuardCore"]),
        .target(name: "CSandbox"),
        // epoll, eventfd, splice and accept4 for the egress proxy's socket front.
        .target(name: "CLinuxIO"),
        .target(name: "StepGuardSandbox", dependencies: ["CSandbox", "StepGuardCore"]),
        .target(
            name: "StepGuardSecrets",
            dependencies: [
                "StepGuardCore", "CVectorscan", "CPCRE2", "CGit2", "CZlib",
                "StepGuardYAML",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "StepGuardIdentity",
            dependencies: [
                "StepGuardCore", "StepGuardPolicy", "CCurl",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "StepGuardEgress",
            dependencies: [
                "StepGuardCore", "StepGuardPolicy", "StepGuardAudit", "CLinuxIO",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                "StepGuardYAML",
            ]
        ),

        // Halt and revoke: the credentials a step held, revoked at their issuers after a violation
        // or on drift (the HTTP client comes from the composition root).
        .target(name: "StepGuardRevocation", dependencies: ["StepGuardCore", "StepGuardPolicy", "StepGuardAudit", "StepGuardEgress"]),
        .target(
            name: "StepGuardPipeline",
            dependencies: ["StepGuardCore", "StepGuardPolicy", "StepGuardYAML"]
        ),

        // MARK: Executable (ArgumentParser commands and wiring only)
        .executableTarget(
            name: "stepguard",
            dependencies: [
                "StepGuardCore", "StepGuardPolicy", "StepGuardAudit", "StepGuardSandbox", "StepGuardSecrets",
                "StepGuardIdentity", "StepGuardEgress", "StepGuardRevocation", "StepGuardPipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // 2 MiB segment alignment: the kernel can then map the code in 2 MiB pages (ExecutableCode).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "max-page-size=0x200000"])]
        ),

        // MARK: Test support and tests
        // Test support without networking (temporary directories, the binary runner, a test OIDC
        // issuer), and the loopback servers with TLS from a test CA, which need NIO and Egress's CA.
        .target(name: "StepGuardTestSupport", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "StepGuardServerTestSupport",
            dependencies: [
                "StepGuardTestSupport", "StepGuardEgress",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Fake credentials and key containers for the scanner's tests, made from the rules' templates.
        .target(name: "StepGuardSecretsTestSupport", dependencies: ["StepGuardSecrets", "StepGuardTestSupport"]),
        .testTarget(name: "StepGuardPolicyTests", dependencies: ["StepGuardPolicy"]),
        .testTarget(name: "StepGuardAuditTests", dependencies: ["StepGuardAudit", "StepGuardCore"]),
        .testTarget(name: "StepGuardSandboxTests", dependencies: ["StepGuardSandbox", "StepGuardTestSupport"], exclude: ["Harness"]),
        .testTarget(name: "StepGuardSecretsTests", dependencies: ["StepGuardSecrets", "StepGuardCore", "StepGuardTestSupport", "StepGuardSecretsTestSupport"]),
        .testTarget(
            name: "StepGuardIdentityTests",
            dependencies: [
                "StepGuardIdentity", "StepGuardCore", "StepGuardSecrets", "StepGuardTestSupport", "StepGuardServerTestSupport", "StepGuardEgress",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(name: "StepGuardEgressTests", dependencies: ["StepGuardEgress", "StepGuardCore", "StepGuardSecrets", "StepGuardTestSupport", "StepGuardServerTestSupport",
                                                               .product(name: "NIOEmbedded", package: "swift-nio")]),
        .testTarget(name: "StepGuardRevocationTests", dependencies: ["StepGuardRevocation", "StepGuardEgress", "StepGuardCore"]),
        .testTarget(name: "StepGuardPipelineTests", dependencies: ["StepGuardPipeline", "StepGuardYAML"]),
        .testTarget(name: "StepGuardYAMLTests", dependencies: ["StepGuardYAML"]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CLazyLoad", "CCurl", "CGit2", "CVectorscan", "CPCRE2", "StepGuardTestSupport", "StepGuardServerTestSupport"]),
        .testTarget(name: "StepGuardCommandLineTests", dependencies: ["stepguard"]),
        // Suites that drive the built binary; Core and Secrets only for redaction hashes and the
        // templates of fake credentials.
        .testTarget(name: "EndToEndTests", dependencies: ["StepGuardTestSupport", "StepGuardServerTestSupport", "StepGuardCore", "StepGuardSecrets", "StepGuardSecretsTestSupport"]),
    ]
)

// Start-up (issue #17): stepguard's own modules get generic types' metadata through direct
// accessors, with their conformances passed in, instead of by mangled name. By mangled name, the
// first use of each type such as `Set<String>` made the runtime look its conformances up by
// scanning every conformance record in the binary (about 6,700): about 1 ms of each `run`.
// `STEPGUARD_STARTUP_TRACE=1 swift build …` compiles in the stage marks `bench/start-stages.py` reads
// (StartupTrace); no other build has them.
for target in package.targets where target.type != .test && (target.name.hasPrefix("StepGuard") || target.name == "stepguard") {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .unsafeFlags(["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"]),
    ] + (Context.environment["STEPGUARD_STARTUP_TRACE"] == nil ? [] : [.define("STEPGUARD_STARTUP_TRACE")])
}
