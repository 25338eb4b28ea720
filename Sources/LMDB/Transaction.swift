import CLMDB

/// A transaction, only ever seen inside `Environment.read` or `Environment.write`.
///
/// Byte buffers handed out (`UnsafeRawBufferPointer`) point into the memory map and are valid
/// only until the transaction ends or, in a write transaction, until the next write.
/// Do not let them escape the closure.
public final class Transaction {
    /// Keeps the environment open for as long as the transaction lives.
    public let environment: Environment
    let handle: OpaquePointer
    public let isReadOnly: Bool
    private var isOpen = true

    init(environment: Environment, handle: OpaquePointer, readOnly: Bool) {
        self.environment = environment
        self.handle = handle
        self.isReadOnly = readOnly
    }

    func finish() { isOpen = false }

    @inline(__always)
    private func assertOpen() {
        precondition(isOpen, "transaction used outside its closure")
    }

    /// Opens (with `.create`, creates) a named table in this transaction. Its handle is usable by
    /// other transactions only once this one commits; if it aborts, the handle is closed.
    public func openTable(_ name: String, flags: TableFlags) throws -> Table {
        // LMDB: mdb_dbi_open must not run in two transactions of one process at once.
        try environment.tableOpening.withLock { _ in
            var dbi: MDB_dbi = 0
            try LMDBError.check(mdb_dbi_open(handle, name, flags.rawValue, &dbi))
            return Table(name: name, dbi: dbi)
        }
    }

    // MARK: Reads

    /// The value stored under `key`, or nil.
    public func get(_ table: Table, key: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer? {
        assertOpen()
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val()
        let rc = mdb_get(handle, table.dbi, &k, &v)
        if rc == MDB_NOTFOUND { return nil }
        try LMDBError.check(rc)
        return UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size)
    }

    /// Convenience: the value under `key` copied into an array.
    public func get(_ table: Table, key: [UInt8]) throws -> [UInt8]? {
        try key.withUnsafeBytes { (k) in
            try get(table, key: k).map { Array($0) }
        }
    }

    // MARK: Writes

    public func put(
        _ table: Table, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: PutFlags
    ) throws {
        assertOpen()
        precondition(!isReadOnly, "put in a read-only transaction")
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try LMDBError.check(mdb_put(handle, table.dbi, &k, &v, flags.rawValue))
    }

    /// Reserves `count` bytes under `key` and lets `fill` write them in place (`MDB_RESERVE`),
    /// saving the copy of a value built elsewhere. Not for duplicate tables. The buffer is
    /// valid only inside `fill`.
    public func put<T>(
        _ table: Table, key: UnsafeRawBufferPointer, reserving count: Int, flags: PutFlags,
        _ fill: (UnsafeMutableRawBufferPointer) throws -> T
    ) throws -> T {
        assertOpen()
        precondition(!isReadOnly, "put in a read-only transaction")
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: count, mv_data: nil)
        try LMDBError.check(mdb_put(handle, table.dbi, &k, &v, flags.rawValue | UInt32(MDB_RESERVE)))
        return try fill(UnsafeMutableRawBufferPointer(start: v.mv_data, count: count))
    }

    public func put(_ table: Table, key: [UInt8], value: [UInt8], flags: PutFlags) throws {
        try key.withUnsafeBytes { (k) in
            try value.withUnsafeBytes { (v) in try put(table, key: k, value: v, flags: flags) }
        }
    }

    /// Deletes `key` (every value of it in a duplicate table). Returns false when it was absent.
    @discardableResult
    public func delete(_ table: Table, key: [UInt8]) throws -> Bool {
        assertOpen()
        precondition(!isReadOnly, "delete in a read-only transaction")
        return try key.withUnsafeBytes { (kb) in
            var k = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            let rc = mdb_del(handle, table.dbi, &k, nil)
            if rc == MDB_NOTFOUND { return false }
            try LMDBError.check(rc)
            return true
        }
    }

    /// Removes every entry of `table` (keeps the table).
    public func clear(_ table: Table) throws {
        assertOpen()
        try LMDBError.check(mdb_drop(handle, table.dbi, 0))
    }

    /// Deletes `table` and its name from the environment. LMDB closes its handle at once, for
    /// every transaction of the process: no other transaction may be using it.
    public func drop(_ table: Table) throws {
        assertOpen()
        try LMDBError.check(mdb_drop(handle, table.dbi, 1))
    }

    /// Number of entries in `table`.
    public func count(_ table: Table) throws -> Int {
        assertOpen()
        var stat = MDB_stat()
        try LMDBError.check(mdb_stat(handle, table.dbi, &stat))
        return stat.ms_entries
    }

    // MARK: Cursors

    /// Runs `body` with a cursor over `table`, closed when `body` returns.
    public func withCursor<T, E: Error>(_ table: Table, _ body: (Cursor) throws(E) -> T) throws -> T {
        assertOpen()
        var raw: OpaquePointer?
        try LMDBError.check(mdb_cursor_open(handle, table.dbi, &raw))
        let cursor = Cursor(transaction: self, handle: raw!)
        defer { cursor.close() }
        return try body(cursor)
    }
}
