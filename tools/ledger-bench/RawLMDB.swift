import CLMDB
import Foundation

/// The ceiling: plain C calls into liblmdb, as `shared/bench/lmdb-limit.c` makes them, with no
/// wrapper, no index, no hash. Whatever the ledger does on top is measured against this.
struct RawError: Error, CustomStringConvertible {
    let call: String
    let code: Int32
    var description: String { "\(call): \(String(cString: mdb_strerror(code)))" }
}

@inline(__always)
private func check(_ code: Int32, _ call: @autoclosure () -> String) throws(RawError) {
    if code != MDB_SUCCESS { throw RawError(call: call(), code: code) }
}

/// Records as one flat byte array: record `i` is `storage[offsets[i]..<offsets[i + 1]]`.
struct RecordBytes: Sendable {
    var storage: [UInt8] = []
    var offsets: [Int] = [0]

    var count: Int { offsets.count - 1 }
    var meanBytes: Double { count == 0 ? 0 : Double(storage.count) / Double(count) }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        storage.append(contentsOf: bytes)
        offsets.append(storage.count)
    }

    /// Runs `body` with a function giving record `index`'s bytes, valid inside `body` only.
    func withBytes<T>(_ body: ((Int) -> UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try storage.withUnsafeBytes { base in
            try body { index in UnsafeRawBufferPointer(rebasing: base[offsets[index]..<offsets[index + 1]]) }
        }
    }

    mutating func append(_ bytes: [UInt8]) {
        storage.append(contentsOf: bytes)
        offsets.append(storage.count)
    }

    mutating func append(contentsOf other: RecordBytes) {
        let base = storage.count
        storage.append(contentsOf: other.storage)
        offsets.append(contentsOf: other.offsets.dropFirst().map { $0 + base })
    }

    func prefix(_ n: Int) -> RecordBytes { slice(0..<min(n, count)) }

    func slice(_ range: Range<Int>) -> RecordBytes {
        let base = offsets[range.lowerBound]
        return RecordBytes(
            storage: Array(storage[base..<offsets[range.upperBound]]),
            offsets: offsets[range.lowerBound...range.upperBound].map { $0 - base })
    }
}

/// The ledger's two index puts per record, for the schema ceiling: `streams` gets
/// `stream ‖ 0 ‖ version` and `idempotency` gets `source ‖ 0 ‖ id`, each → the position.
struct IndexPuts {
    var streams: MDB_dbi
    var idempotency: MDB_dbi
    var streamKeys: RecordBytes
    var idempotencyKeys: RecordBytes
}

final class RawEnvironment {
    let handle: OpaquePointer

    /// Flags are spelled out by each caller: `0` (full sync) for the write ceilings;
    /// `MDB_RDONLY | MDB_NOLOCK` to read a ledger's files beside the ledger's own open handle
    /// (no lock file is touched, so the ledger's locks are left alone; nothing writes meanwhile).
    init(path: String, flags: Int32, mapSizeBytes: Int = 64 << 30) throws(RawError) {
        var env: OpaquePointer?
        try check(mdb_env_create(&env), "mdb_env_create")
        guard let env else { throw RawError(call: "mdb_env_create", code: MDB_INVALID) }
        do {
            try check(mdb_env_set_mapsize(env, mapSizeBytes), "mdb_env_set_mapsize")
            try check(mdb_env_set_maxdbs(env, 32), "mdb_env_set_maxdbs")
            try check(mdb_env_open(env, path, UInt32(flags | MDB_NOTLS), 0o644), "mdb_env_open \(path)")
        } catch {
            mdb_env_close(env)
            throw error
        }
        handle = env
    }

    deinit { mdb_env_close(handle) }

    func openTable(_ name: String, create: Bool) throws(RawError) -> MDB_dbi {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, create ? 0 : UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        var dbi: MDB_dbi = 0
        let rc = mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if rc != MDB_SUCCESS {
            mdb_txn_abort(txn)
            throw RawError(call: "mdb_dbi_open \(name)", code: rc)
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        return dbi
    }

    /// The value of `key` in `table`, if any.
    func value(of table: String, key: [UInt8]) throws(RawError) -> [UInt8]? {
        let dbi = try openTable(table, create: false)
        var txn: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        var found = MDB_val()
        let rc = key.withUnsafeBytes { bytes in
            var k = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            return mdb_get(txn, dbi, &k, &found)
        }
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_get \(table)")
        return Array(UnsafeRawBufferPointer(start: found.mv_data, count: found.mv_size))
    }

    /// Values of `table` in key order from the 8-byte big-endian key `from` on: a ledger's
    /// `log` table gives its exact record bytes.
    func values(of table: String, from: UInt64, limit: Int) throws(RawError) -> RecordBytes {
        let dbi = try openTable(table, create: false)
        var out = RecordBytes()
        var txn: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        var cursor: OpaquePointer?
        try check(mdb_cursor_open(txn, dbi, &cursor), "mdb_cursor_open")
        defer { mdb_cursor_close(cursor) }
        var start = from.bigEndian
        var value = MDB_val()
        var rc = withUnsafeMutableBytes(of: &start) { startPointer in
            var key = MDB_val(mv_size: 8, mv_data: startPointer.baseAddress)
            return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        var key = MDB_val()
        while out.count < limit, rc == MDB_SUCCESS {
            out.append(UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
            rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
        }
        return out
    }

    /// `mdb_put(MDB_APPEND)` of every record under its 8-byte big-endian position (the first at
    /// `firstPosition`), `batch` per transaction, each committed durably. With `indexes`, each
    /// record's two index keys are put as well, as the ledger does. Returns the seconds taken.
    func append(
        _ records: RecordBytes, firstPosition: Int, into log: MDB_dbi, batch: Int, indexes: IndexPuts? = nil
    ) throws -> Double {
        let started = Monotonic.nanoseconds()
        let streamKeys = indexes?.streamKeys ?? RecordBytes()
        let idempotencyKeys = indexes?.idempotencyKeys ?? RecordBytes()
        try records.withBytes { record in
            try streamKeys.withBytes { streamKey in
                try idempotencyKeys.withBytes { idempotencyKey in
                    var position = 0
                    while position < records.count {
                        var txn: OpaquePointer?
                        try check(mdb_txn_begin(handle, nil, 0, &txn), "mdb_txn_begin")
                        let end = min(position + batch, records.count)
                        while position < end {
                            var keyBytes = UInt64(firstPosition + position).bigEndian
                            let rc = withUnsafeBytes(of: &keyBytes) { key in
                                var rc = Self.put(txn, log, key: key, value: record(position), flags: MDB_APPEND)
                                if rc == MDB_SUCCESS, let indexes {
                                    rc = Self.put(txn, indexes.streams, key: streamKey(position), value: key, flags: MDB_NOOVERWRITE)
                                }
                                if rc == MDB_SUCCESS, let indexes {
                                    rc = Self.put(txn, indexes.idempotency, key: idempotencyKey(position), value: key, flags: MDB_NOOVERWRITE)
                                }
                                return rc
                            }
                            if rc != MDB_SUCCESS {
                                mdb_txn_abort(txn)
                                throw RawError(call: "mdb_put", code: rc)
                            }
                            position += 1
                        }
                        // mdb_txn_commit frees the transaction even when it fails.
                        try check(mdb_txn_commit(txn), "mdb_txn_commit")
                    }
                }
            }
        }
        return Double(Monotonic.nanoseconds() - started) / 1e9
    }

    @inline(__always)
    private static func put(
        _ txn: OpaquePointer?, _ dbi: MDB_dbi, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: Int32
    ) -> Int32 {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        return mdb_put(txn, dbi, &k, &v, UInt32(flags))
    }

    /// The read ceiling of `Ledger.stream(_:fromVersion:limit:)`: per query, renew a reset read
    /// transaction in `index` and one here, and in each of the index's runs (oldest first, until
    /// `limit` are found) open a cursor, seek to `stream ‖ 0 ‖ version 1` and walk that stream's
    /// entries; then `mdb_get` each position from `log` and touch the record. Returns each
    /// query's nanoseconds, in the order of `keys`.
    func streamReadLatencies(
        keys: [[UInt8]], limit: Int, index: RawEnvironment, streams runs: [MDB_dbi], log: MDB_dbi
    ) throws -> [UInt64] {
        var txn: OpaquePointer?
        try check(mdb_txn_begin(handle, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin")
        defer { mdb_txn_abort(txn) }
        mdb_txn_reset(txn)
        var indexTxn: OpaquePointer?
        try check(mdb_txn_begin(index.handle, nil, UInt32(MDB_RDONLY), &indexTxn), "mdb_txn_begin index")
        defer { mdb_txn_abort(indexTxn) }
        mdb_txn_reset(indexTxn)
        var latencies: [UInt64] = []
        latencies.reserveCapacity(keys.count)
        var positions = [UInt64](repeating: 0, count: limit)
        var touched = 0
        for seekKey in keys {
            let prefixCount = seekKey.count - 8
            let started = Monotonic.nanoseconds()
            try check(mdb_txn_renew(indexTxn), "mdb_txn_renew index")
            try check(mdb_txn_renew(txn), "mdb_txn_renew")
            var found = 0
            // The index's runs, oldest first, as the ledger reads them (the stream's versions
            // from version 1 on: the seek key's version is 1, so each run's seek is the same).
            for streams in runs where found < limit {
                var cursor: OpaquePointer?
                try check(mdb_cursor_open(indexTxn, streams, &cursor), "mdb_cursor_open")
                seekKey.withUnsafeBytes { seek in
                    var key = MDB_val(mv_size: seek.count, mv_data: UnsafeMutableRawPointer(mutating: seek.baseAddress))
                    var value = MDB_val()
                    var rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
                    while rc == MDB_SUCCESS, found < limit, key.mv_size == seek.count,
                        memcmp(key.mv_data, seek.baseAddress!, prefixCount) == 0
                    {
                        positions[found] = value.mv_data.loadUnaligned(as: UInt64.self)
                        found += 1
                        rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
                    }
                }
                mdb_cursor_close(cursor)
            }
            for index in 0..<found {
                var position = positions[index]
                var value = MDB_val()
                let rc = withUnsafeMutableBytes(of: &position) { keyPointer in
                    var key = MDB_val(mv_size: 8, mv_data: keyPointer.baseAddress)
                    return mdb_get(txn, log, &key, &value)
                }
                try check(rc, "mdb_get log")
                touched &+= value.mv_size &+ Int(value.mv_data.load(fromByteOffset: value.mv_size - 1, as: UInt8.self))
            }
            mdb_txn_reset(txn)
            mdb_txn_reset(indexTxn)
            latencies.append(Monotonic.nanoseconds() - started)
            precondition(found == limit, "raw read found \(found) of \(limit) events")
        }
        precondition(touched != 0)
        return latencies
    }
}
