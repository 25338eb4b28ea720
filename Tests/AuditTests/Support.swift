@_exported import TestSupport
import Foundation
import LMDB
@testable import Ledger



enum Fixture {
    /// An event whose data holds `marker-<n>`: unique bytes a test can find in data.mdb.
    static func event(_ n: Int, stream: String = "24112000000015301234") -> NewEvent {
        NewEvent(
            stream: stream, type: "fapiao.test.happened", source: "urn:fapiao:test", id: "id-\(n)",
            time: "2024-12-31T16:59:26+08:00", occurredMicros: 1_735_635_566_000_000, dataContentType: "application/json",
            data: Array(#"{"n":"marker-\#(String(format: "%04d", n))","note":"事件"}"#.utf8))
    }

    /// Appends events after the head until the log holds `total`, `perBatch` per append,
    /// spread over two streams (every third event in `system/sync`).
    static func append(upTo total: Int, to ledger: Ledger, perBatch: Int = 7) async throws {
        var n = Int(try ledger.headPosition()) + 1
        while n <= total {
            let batch = (n..<min(n + perBatch, total + 1)).map { AppendEntry(event($0, stream: $0 % 3 == 0 ? "system/sync" : "24112000000015301234")) }
            _ = try await ledger.append(batch)
            n += batch.count
        }
    }
}

/// Opens a ledger, runs `body`, closes it and waits until it is released (`Ledger.using`).
func withLedger<T>(at path: String, options: LedgerOptions = LedgerOptions(), _ body: (Ledger) async throws -> T) async throws -> T {
    try await Ledger.using(at: path, options: options, body)
}

/// A crafted writer: the ledger's LMDB environment opened directly, as someone with write
/// access to the files could, to rewrite the `log` (and anything else) behind the ledger's back.
func tamper(_ path: String, _ body: (Transaction, _ tables: (log: Table, meta: Table, nodes: Table, heads: Table)) throws -> Void) throws {
    let environment = try Environment(path: path, options: Environment.Options(mapSizeBytes: 1 << 30, tablesMax: 32))
    try environment.write { txn in
        let tables = (
            log: try txn.openTable("log", flags: []), meta: try txn.openTable("meta", flags: []),
            nodes: try txn.openTable("audit_nodes", flags: []), heads: try txn.openTable("audit_heads", flags: []))
        try body(txn, tables)
    }
}

func positionKey(_ position: UInt64) -> [UInt8] { BigEndian.bytes(position) }

/// Flips one byte inside every occurrence of `marker` in `file` (LMDB is copy-on-write: a
/// freed page may still hold an old copy, so every copy is flipped). Fails when it is absent.
func flipByte(of marker: String, at offset: Int = 0, in file: String) throws {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
    let needle = Array(marker.utf8)
    var found: [Int] = []
    if bytes.count >= needle.count {
        for start in 0...(bytes.count - needle.count) where bytes[start] == needle[0] {
            if bytes[start..<(start + needle.count)].elementsEqual(needle) { found.append(start) }
        }
    }
    guard !found.isEmpty else { throw TestFailure("marker \(marker) does not occur in \(file)") }
    for start in found { bytes[start + offset] ^= 0x20 }
    try Data(bytes).write(to: URL(fileURLWithPath: file))
}

/// Where SwiftPM put the package's executables.
enum BuiltProducts {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func executable(named name: String) throws -> URL {
        var directories: [URL] = []
        directories.append(URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent())
        if let main = Bundle.main.executableURL { directories.append(main.resolvingSymlinksInPath().deletingLastPathComponent()) }
        directories.append(Bundle.main.bundleURL.deletingLastPathComponent())
        directories.append(packageRoot.appendingPathComponent(".build/debug"))
        for directory in directories {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestFailure("no built \(name) in \(directories.map(\.path)); run `swift build` first")
    }
}

/// Runs a program to its end; returns its exit status, standard output and standard error.
func run(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["NO_COLOR"] = "1"
    for (name, value) in environment { env[name] = value }
    process.environment = env
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    // Read both pipes on their own threads so a full pipe never blocks the child.
    let errorData = LockedData()
    let reader = Thread { errorData.value = errors.fileHandleForReading.readDataToEndOfFile() }
    reader.start()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while !errorData.isSet { usleep(1000) }
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: errorData.value ?? Data(), as: UTF8.self))
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Data?
    var value: Data? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
    var isSet: Bool { value != nil }
}
