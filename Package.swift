// swift-tools-version: 6.1
// fapiao: an event-sourced ledger for Chinese VAT invoices, on LMDB.
//
// Layers point one way: the CLI (`fapiao`) -> `Ledger` -> `LMDB` -> `CLMDB`.
// `FapiaoDomain` is pure (no LMDB, no I/O) and is used by the ledger and the CLI.
import PackageDescription

/// The executables allocate with jemalloc (`libjemalloc-dev`), not glibc's malloc: a rebuild or an
/// import makes and frees millions of small strings and arrays from two threads, and glibc's
/// arenas spent about a tenth of the CPU on it (docs/performance.md, "Allocator"). Linked as a
/// library, jemalloc's `malloc` and `free` take the place of the C library's for the whole process.
let jemalloc: [LinkerSetting] = [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]

let package = Package(
    name: "fapiao",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fapiao", targets: ["fapiao"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The system liblmdb (Debian: liblmdb-dev). Nothing but a module map.
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),
        // A small, safe wrapper over LMDB. Knows nothing of invoices.
        .target(name: "LMDB", dependencies: ["CLMDB"]),
        .target(name: "CSchedule"),
        // The invoice domain: keys, tax IDs, money, rules, event types, lifecycles. Pure.
        .target(name: "FapiaoDomain"),
        // The event log, group-commit writer, reads, rejections. Built on the LMDB wrapper.
        .target(
            name: "Ledger",
            dependencies: [
                "LMDB",
                "CSchedule",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Importing CloudEvents JSON Lines: validate everything, then append; all or nothing.
        .target(
            name: "Ingestion",
            dependencies: [
                "Ledger",
                "FapiaoDomain",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Projections: current state, status views, search, access, folded from the log.
        .target(
            name: "Projections",
            dependencies: [
                "Ledger",
                "LMDB",
                "FapiaoDomain",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Forensics: replay and `why`, the decisive cause with the events that prove it.
        .target(name: "Forensics", dependencies: ["Ledger", "Projections", "FapiaoDomain"]),
        // Audit: the RFC 9162 Merkle tree over the log, signed tree heads, proofs, bundles, export.
        .target(
            name: "Audit",
            dependencies: ["Ledger", "LMDB", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The HTTP server: ingestion, queries, forensic answers, live subscriptions (SSE), auth, metrics.
        .target(
            name: "Server",
            dependencies: [
                "Ledger",
                "Projections",
                "Forensics",
                "Audit",
                "Ingestion",
                "FapiaoDomain",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The command-line tool: argument parsing and printing only.
        .executableTarget(
            name: "fapiao",
            dependencies: [
                "Server",
                "Ledger",
                "Ingestion",
                "Projections",
                "Forensics",
                "Audit",
                "FapiaoDomain",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            linkerSettings: jemalloc
        ),
        // Benchmark: ledger append/read figures against the raw-LMDB ceiling, same run.
        .executableTarget(
            name: "ledger-bench",
            dependencies: ["Ledger", "LMDB", "CLMDB"],
            path: "tools/ledger-bench",
            linkerSettings: jemalloc
        ),
        // Benchmark: importing CloudEvents JSON Lines (validate, spool, append) against the parse-only ceiling.
        .executableTarget(name: "import-bench", dependencies: ["Ingestion", "Ledger", "FapiaoDomain"], path: "tools/import-bench", linkerSettings: jemalloc),
        // The realistic data generator: Beijing invoices, their failures, and what `why` should answer.
        .target(name: "Generator", dependencies: ["FapiaoDomain"]),
        .executableTarget(name: "fapiao-gen", dependencies: ["Generator", "FapiaoDomain", .product(name: "ArgumentParser", package: "swift-argument-parser")], path: "tools/generator"),
        // Test helper: appends forever and prints each acknowledged position (the crash test kills it).
        .executableTarget(
            name: "ledger-torture",
            dependencies: ["Ledger"],
            path: "tools/ledger-torture"
        ),
        // Benchmark: `audit verify` over a 1M-event ledger against raw SHA-256 over the same bytes.
        .executableTarget(name: "audit-bench", dependencies: ["Audit", "Ledger"], path: "tools/audit-bench", linkerSettings: jemalloc),
        // Benchmark: projections and forensics on a generated Beijing ledger.
        .executableTarget(
            name: "forensics-bench",
            dependencies: ["Forensics", "Projections", "Ingestion", "Ledger", "FapiaoDomain", "Generator"],
            path: "tools/forensics-bench",
            linkerSettings: jemalloc
        ),
        // Benchmark: HTTP ingestion of 100-event batches against the in-process append rate, same run.
        .executableTarget(
            name: "server-bench",
            dependencies: [
                "Server", "Ledger", "Ingestion", "FapiaoDomain", "Generator",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "tools/server-bench",
            linkerSettings: jemalloc
        ),
        // What the test targets share (temporary directories, failures). Only tests use it.
        .target(name: "TestSupport", dependencies: ["FapiaoDomain"], path: "Tests/TestSupport"),
        .testTarget(name: "LMDBTests", dependencies: ["TestSupport", "LMDB"]),
        .testTarget(name: "FapiaoDomainTests", dependencies: ["FapiaoDomain"]),
        .testTarget(name: "IngestionTests", dependencies: ["TestSupport", "Ingestion", "Ledger", "FapiaoDomain"]),
        .testTarget(
            name: "LedgerTests",
            dependencies: ["TestSupport", "Ledger", "LMDB", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "ProjectionsTests", dependencies: ["TestSupport", "Projections", "Ledger", "LMDB", "FapiaoDomain", "Ingestion", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "ForensicsTests", dependencies: ["TestSupport", "Forensics", "Projections", "Ingestion", "Ledger", "FapiaoDomain"]),
        .testTarget(
            name: "AuditTests",
            dependencies: ["TestSupport", "Audit", "Ledger", "LMDB", "fapiao", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .testTarget(name: "GeneratorTests", dependencies: ["TestSupport", "Generator", "Forensics", "Projections", "Ingestion", "Ledger", "FapiaoDomain"]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "TestSupport",
                "Server", "Ledger", "Projections", "Forensics", "Audit", "Ingestion", "FapiaoDomain",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport", "Ledger", "fapiao", "ledger-torture"]),
    ],
    swiftLanguageModes: [.v6]
)

