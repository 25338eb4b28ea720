import CLMDB

/// A position in a table. Only valid inside `Transaction.withCursor`.
public final class Cursor {
    /// An entry the cursor stands on. Buffers point into the map: valid until the transaction ends.
    public struct Entry {
        public let key: UnsafeRawBufferPointer
        public let value: UnsafeRawBufferPointer
    }

    let transaction: Transaction
    let handle: OpaquePointer
    private var isOpen = true

    init(transaction: Transaction, handle: OpaquePointer) {
        self.transaction = transaction
        self.handle = handle
    }

    func close() {
        if isOpen { mdb_cursor_close(handle) }
        isOpen = false
    }

    @inline(__always)
    private func move(_ op: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws -> Entry? {
        precondition(isOpen, "cursor used outside its closure")
        var k = MDB_val(mv_size: key?.count ?? 0, mv_data: UnsafeMutableRawPointer(mutating: key?.baseAddress))
        var v = MDB_val()
        let rc = mdb_cursor_get(handle, &k, &v, op)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        return Entry(
            key: UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size),
            value: UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }

    public func first() throws -> Entry? { try move(MDB_FIRST) }
    public func last() throws -> Entry? { try move(MDB_LAST) }
    public func next() throws -> Entry? { try move(MDB_NEXT) }
    public func previous() throws -> Entry? { try move(MDB_PREV) }
    /// In a duplicate table: the next value of the current key, nil after its last.
    public func nextDuplicate() throws -> Entry? { try move(MDB_NEXT_DUP) }
    /// In a duplicate table: the first value of the next key.
    public func nextKey() throws -> Entry? { try move(MDB_NEXT_NODUP) }
    /// The entry at exactly `key`.
    public func seek(exactly key: UnsafeRawBufferPointer) throws -> Entry? { try move(MDB_SET_KEY, key: key) }
    /// The first entry whose key is ≥ `key`.
    public func seek(atLeast key: UnsafeRawBufferPointer) throws -> Entry? { try move(MDB_SET_RANGE, key: key) }

    public func seek(exactly key: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { (k) in try seek(exactly: k) }
    }
    public func seek(atLeast key: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { (k) in try seek(atLeast: k) }
    }

    /// Puts `key` → `value` through this cursor (write transactions only). Keys put in sorted
    /// order through one cursor skip most of the descent from the root: LMDB first looks on the
    /// leaf page the cursor stands on.
    public func put(key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: PutFlags) throws {
        precondition(isOpen, "cursor used outside its closure")
        precondition(!transaction.isReadOnly, "put in a read-only transaction")
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(mdb_cursor_put(handle, &k, &v, flags.rawValue))
    }

    /// Deletes the entry the cursor stands on (write transactions only). Seek again before the
    /// next read: where the cursor stands afterwards is LMDB's business.
    public func deleteCurrent() throws {
        precondition(isOpen, "cursor used outside its closure")
        precondition(!transaction.isReadOnly, "delete in a read-only transaction")
        try LMDBError.check(mdb_cursor_del(handle, 0))
    }

    /// Number of values of the current key (duplicate tables).
    public func duplicateCount() throws -> Int {
        var count = 0
        try LMDBError.check(mdb_cursor_count(handle, &count))
        return count
    }
}
