// What every test target shares: a fresh directory per test (LMDB environments must never be
// opened twice in one process) and a plain failure to throw.
import Foundation
import Synchronization

/// A directory removed when the value goes away.
public struct TemporaryDirectory: ~Copyable {
    public let path: String

    public init(_ label: String = "test") {
        path = NSTemporaryDirectory() + "fapiao-test-\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Where a test's ledger goes (created by the ledger itself).
    public var ledgerPath: String { path + "/ledger" }

    /// Writes `text` to a file in this directory and returns its path.
    public func file(_ name: String, _ text: String) throws -> String {
        try file(name, bytes: Array(text.utf8))
    }

    public func file(_ name: String, bytes: [UInt8]) throws -> String {
        let filePath = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: filePath))
        return filePath
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A writer clock (microseconds since the epoch) that moves one millisecond per call: recorded
/// times never depend on the wall clock, so two ledgers fed the same events record the same times.
public final class SteppingClock: Sendable {
    private let now = Mutex<Int64>(1_735_660_800_000_000) // 2025-01-01T00:00:00+08:00

    public init() {}

    public var micros: @Sendable () -> Int64 {
        { [self] in now.withLock { $0 += 1_000; return $0 } }
    }
}
