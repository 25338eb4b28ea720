import CLMDB

/// An LMDB result code that is not `MDB_SUCCESS`, with LMDB's own message.
///
/// Callers match codes with `~=`, GRDB style:
///
///     do { try txn.put(...) } catch LMDBError.mapFull { ... }
public struct LMDBError: Error, Equatable, Hashable, CustomStringConvertible, Sendable {
    public let code: Int32

    public init(code: Int32) { self.code = code }

    public static let keyExists = LMDBError(code: MDB_KEYEXIST)
    public static let notFound = LMDBError(code: MDB_NOTFOUND)
    public static let mapFull = LMDBError(code: MDB_MAP_FULL)
    public static let mapResized = LMDBError(code: MDB_MAP_RESIZED)
    public static let readersFull = LMDBError(code: MDB_READERS_FULL)
    public static let transactionFull = LMDBError(code: MDB_TXN_FULL)
    public static let badTransaction = LMDBError(code: MDB_BAD_TXN)
    public static let badValueSize = LMDBError(code: MDB_BAD_VALSIZE)
    public static let tablesFull = LMDBError(code: MDB_DBS_FULL)
    public static let incompatible = LMDBError(code: MDB_INCOMPATIBLE)
    public static let invalid = LMDBError(code: MDB_INVALID)
    /// `ENOSPC`: the disk is full. LMDB returns errno values as result codes.
    public static let noSpace = LMDBError(code: 28)
    /// `ENOENT`: no such file or directory (opening a ledger that does not exist).
    public static let noEntry = LMDBError(code: 2)
    /// `EACCES`: permission denied.
    public static let permissionDenied = LMDBError(code: 13)

    public var description: String {
        "LMDB error \(code): \(String(cString: mdb_strerror(code)))"
    }

    public static func ~= (pattern: LMDBError, error: any Error) -> Bool {
        (error as? LMDBError) == pattern
    }

    /// Throws when `code` is not `MDB_SUCCESS`.
    @inline(__always)
    static func check(_ code: Int32) throws(LMDBError) {
        if code != MDB_SUCCESS { throw LMDBError(code: code) }
    }
}
