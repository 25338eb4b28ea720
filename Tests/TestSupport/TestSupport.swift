// What every test target shares: a fresh directory per test (LMDB environments must never be
// opened twice in one process) and a plain failure to throw.
import Foundation

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
