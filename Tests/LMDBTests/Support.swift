import Foundation
import LMDB

/// A fresh directory per test: LMDB environments must never be opened twice in one process.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init(_ label: String = "lmdb") {
        path = NSTemporaryDirectory() + "fapiao-test-\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension Array where Element == UInt8 {
    /// 8 big-endian bytes: keys that LMDB's default comparator orders numerically.
    static func key(_ value: UInt64) -> [UInt8] {
        Swift.withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}

/// A test failure of our own, to throw from inside a write transaction.
struct Boom: Error, Equatable {}
