@_exported import TestSupport
import Foundation
import LMDB


extension Array where Element == UInt8 {
    /// 8 big-endian bytes: keys that LMDB's default comparator orders numerically.
    static func key(_ value: UInt64) -> [UInt8] {
        Swift.withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}

/// A test failure of our own, to throw from inside a write transaction.
struct Boom: Error, Equatable {}
