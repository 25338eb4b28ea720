import CLMDB
#if canImport(Glibc)
import Glibc
#endif

/// A named LMDB database ("table"). A plain handle: valid for the environment's lifetime.
public struct Table: Sendable, Hashable {
    public let name: String
    let dbi: MDB_dbi
}

/// Flags of a table, spelled out at the call site.
public struct TableFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let create = TableFlags(rawValue: UInt32(MDB_CREATE))
    /// Several values per key, kept sorted (values ≤ 511 bytes).
    public static let duplicateSort = TableFlags(rawValue: UInt32(MDB_DUPSORT))
    /// With `duplicateSort`: all values of a key have the same size.
    public static let duplicateFixed = TableFlags(rawValue: UInt32(MDB_DUPFIXED))
    /// Keys are native-endian integers. Not used for the log: big-endian keys sort right by default.
    public static let integerKey = TableFlags(rawValue: UInt32(MDB_INTEGERKEY))
}

/// Flags of a put, spelled out at the call site.
public struct PutFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Fail with `keyExists` when the key is present.
    public static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// Duplicate tables: fail with `keyExists` when the key/value pair is present.
    public static let noDuplicateData = PutFlags(rawValue: UInt32(MDB_NODUPDATA))
    /// The key sorts after every key in the table (else `keyExists`): a free ordering assertion.
    public static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
    /// Duplicate tables: the value sorts after every value of the key.
    public static let appendDuplicate = PutFlags(rawValue: UInt32(MDB_APPENDDUP))
}

/// LMDB's default key order (tables opened without a comparator of their own): bytewise
/// (`memcmp`), and a key before every longer key it begins.
public enum KeyOrder {
    public static func compare(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Int32 {
        let common = min(x.count, y.count)
        let order = common == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, common)
        if order != 0 { return order }
        return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
    }
}
