import CLMDB
import Synchronization

/// One LMDB environment (a directory holding `data.mdb` and `lock.mdb`).
///
/// Caveats this type exists to handle (see `docs/architecture.md`):
/// - It is always opened with `MDB_NOTLS`: Swift tasks hop threads, so read transactions must
///   not be tied to a thread's TLS slot.
/// - Every transaction holds a strong reference to its environment; the environment is closed
///   only when the last transaction and the owner are gone.
/// - Never open the same directory twice in one process: LMDB's locks are per process.
/// - Write transactions are closure-scoped and synchronous, so a write transaction begins and
///   commits on the same thread and nothing can `await` while it is open.
public final class Environment: @unchecked Sendable {
    public struct Options: Sendable {
        /// Upper bound of the memory map, and so of the data file. Sparse: it costs nothing until used.
        public var mapSizeBytes: Int
        /// Named tables the environment may hold.
        public var tablesMax: UInt32
        /// Concurrent read transactions across all processes.
        public var readersMax: UInt32
        /// `MDB_RDONLY`: no write transactions; other processes may write concurrently.
        public var readOnly: Bool
        /// `MDB_NOSYNC`: not durable. Only for rebuildable outputs followed by `sync(force: true)`.
        public var noSync: Bool
        /// File mode of created files.
        public var fileMode: UInt32

        public init(
            mapSizeBytes: Int = 1 << 30, tablesMax: UInt32 = 32, readersMax: UInt32 = 126,
            readOnly: Bool = false, noSync: Bool = false, fileMode: UInt32 = 0o644
        ) {
            self.mapSizeBytes = mapSizeBytes
            self.tablesMax = tablesMax
            self.readersMax = readersMax
            self.readOnly = readOnly
            self.noSync = noSync
            self.fileMode = fileMode
        }
    }

    let handle: OpaquePointer
    public let path: String
    public let options: Options
    /// Reset read transactions kept for reuse: `mdb_txn_renew` costs ~10 ns against ~200 ns for begin.
    private let idleReaders = Mutex<[IdleReader]>([])
    /// Serialises `mdb_dbi_open` across the process's transactions.
    let tableOpening = Mutex<Void>(())
    private static let idleReadersMax = 16

    /// Opens (and for a writable environment, creates) the environment at the directory `path`.
    /// The directory must exist.
    public init(path: String, options: Options) throws(LMDBError) {
        var env: OpaquePointer?
        try LMDBError.check(mdb_env_create(&env))
        guard let env else { throw LMDBError.invalid }
        var flags: UInt32 = UInt32(MDB_NOTLS)
        if options.readOnly { flags |= UInt32(MDB_RDONLY) }
        if options.noSync { flags |= UInt32(MDB_NOSYNC) }
        do {
            try LMDBError.check(mdb_env_set_mapsize(env, options.mapSizeBytes))
            try LMDBError.check(mdb_env_set_maxdbs(env, options.tablesMax))
            try LMDBError.check(mdb_env_set_maxreaders(env, options.readersMax))
            try LMDBError.check(mdb_env_open(env, path, flags, mdb_mode_t(options.fileMode)))
        } catch {
            mdb_env_close(env)
            throw error
        }
        self.handle = env
        self.path = path
        self.options = options
    }

    deinit {
        for idle in idleReaders.withLock({ $0 }) { mdb_txn_abort(idle.handle) }
        mdb_env_close(handle)
    }

    // MARK: Transactions

    /// Runs `body` in a read-only snapshot. Never blocks the writer; never waits for it.
    public func read<T, E: Error>(_ body: (Transaction) throws(E) -> T) throws -> T {
        let txn = Transaction(environment: self, handle: try beginReader(), readOnly: true)
        defer { endReader(txn) }
        return try body(txn)
    }

    /// Runs `body` in a write transaction and commits it when `body` returns; aborts it when
    /// `body` throws. Only one write transaction runs at a time (LMDB's writer lock).
    public func write<T, E: Error>(_ body: (Transaction) throws(E) -> T) throws -> T {
        precondition(!options.readOnly, "write transaction on a read-only environment")
        var raw: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, 0, &raw))
        let txn = Transaction(environment: self, handle: raw!, readOnly: false)
        let value: T
        do {
            value = try body(txn)
        } catch {
            txn.finish()
            mdb_txn_abort(raw)
            throw error
        }
        txn.finish()
        // mdb_txn_commit frees the transaction even when it fails: never abort it afterwards.
        try LMDBError.check(mdb_txn_commit(raw))
        return value
    }

    private func beginReader() throws(LMDBError) -> OpaquePointer {
        if let idle = idleReaders.withLock({ $0.popLast() }) {
            let rc = mdb_txn_renew(idle.handle)
            if rc == MDB_SUCCESS { return idle.handle }
            mdb_txn_abort(idle.handle)
        }
        var raw: OpaquePointer?
        var rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &raw)
        if rc == MDB_MAP_RESIZED {
            // Another process grew the map. Adopt its size (0 = the current file size) and retry.
            rc = mdb_env_set_mapsize(handle, 0)
            if rc == MDB_SUCCESS { rc = mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &raw) }
        }
        try LMDBError.check(rc)
        return raw!
    }

    private func endReader(_ txn: Transaction) {
        txn.finish()
        mdb_txn_reset(txn.handle)
        let kept = idleReaders.withLock { idle in
            guard idle.count < Self.idleReadersMax else { return false }
            idle.append(IdleReader(handle: txn.handle))
            return true
        }
        if !kept { mdb_txn_abort(txn.handle) }
    }

    // MARK: Tables

    /// Opens a named table, creating it when `create` is set (which needs a writable environment).
    /// Table handles stay valid for the environment's life.
    public func openTable(_ name: String, flags: TableFlags = [], create: Bool) throws -> Table {
        if create {
            return try write { txn in try txn.openTable(name, flags: flags.union(.create)) }
        }
        // Open in a fresh read transaction, then commit it: a table handle opened in a
        // transaction is closed again if that transaction aborts (even a read-only one).
        var raw: OpaquePointer?
        try LMDBError.check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &raw))
        let txn = Transaction(environment: self, handle: raw!, readOnly: true)
        let table: Table
        do {
            table = try txn.openTable(name, flags: flags)
        } catch {
            txn.finish()
            mdb_txn_abort(raw)
            throw error
        }
        txn.finish()
        try LMDBError.check(mdb_txn_commit(raw))
        return table
    }

    /// The names of the environment's named tables (the keys of LMDB's main table).
    public func tableNames() throws -> [String] {
        try read { txn in
            var dbi: MDB_dbi = 0
            try tableOpening.withLock { _ in try LMDBError.check(mdb_dbi_open(txn.handle, nil, 0, &dbi)) }
            return try txn.withCursor(Table(name: "", dbi: dbi)) { cursor in
                var names: [String] = []
                var entry = try cursor.first()
                while let current = entry {
                    names.append(String(decoding: current.key, as: UTF8.self))
                    entry = try cursor.next()
                }
                return names
            }
        }
    }

    // MARK: Maintenance

    /// Clears reader slots left by processes that died. Returns how many were cleared.
    @discardableResult
    public func clearStaleReaders() throws(LMDBError) -> Int {
        var dead: Int32 = 0
        try LMDBError.check(mdb_reader_check(handle, &dead))
        return Int(dead)
    }

    /// Flushes buffers to disk (for environments opened with `noSync`).
    public func sync(force: Bool = true) throws(LMDBError) {
        try LMDBError.check(mdb_env_sync(handle, force ? 1 : 0))
    }

    /// Hot backup into the existing empty directory `path`, compacted.
    public func copy(to path: String, compact: Bool = true) throws(LMDBError) {
        try LMDBError.check(mdb_env_copy2(handle, path, compact ? UInt32(MDB_CP_COMPACT) : 0))
    }

    public struct Usage: Sendable, Equatable {
        public var mapSizeBytes: Int
        public var usedBytes: Int
        public var pageSizeBytes: Int
        public var readersUsed: Int
        public var readersMax: Int
    }

    /// How full the map is: the last used page against the map size.
    public func usage() -> Usage {
        var info = MDB_envinfo()
        mdb_env_info(handle, &info)
        var stat = MDB_stat()
        mdb_env_stat(handle, &stat)
        let page = Int(stat.ms_psize)
        return Usage(
            mapSizeBytes: info.me_mapsize, usedBytes: (info.me_last_pgno + 1) * page,
            pageSizeBytes: page, readersUsed: Int(info.me_numreaders), readersMax: Int(info.me_maxreaders))
    }

    /// The LMDB library version, e.g. "LMDB 0.9.24: (July 24, 2019)".
    public static var libraryVersion: String { String(cString: mdb_version(nil, nil, nil)) }
}

/// A reset read transaction waiting in the pool. Safe to move between threads: `MDB_NOTLS`.
private struct IdleReader: @unchecked Sendable {
    let handle: OpaquePointer
}
