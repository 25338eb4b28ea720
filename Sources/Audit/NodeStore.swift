import LMDB

/// The table `audit_nodes`: the hash of every complete subtree of the log's Merkle tree, so a
/// root or a proof at any tree size takes O(log n) reads instead of re-hashing the log.
///
///     key   level (1 byte) ‖ index within the level (8 bytes, big-endian)
///     value the subtree's hash (32 bytes)
///
/// The node at level l, index i covers leaves i·2^l ..< (i+1)·2^l (leaf i is the record at
/// position i+1). Level 0 holds the leaf hashes. Nodes are only ever added, in the same
/// transaction as the leaves they complete; the number of leaves built is the last level-0
/// index plus one, so the table is its own checkpoint.
struct NodeStore: Sendable {
    let table: Table

    static let tableName = "audit_nodes"

    static func key(level: Int, index: UInt64) -> [UInt8] {
        precondition((0..<64).contains(level), "a tree of 2^64 leaves has no level \(level)")
        return [UInt8(level)] + BigEndianKey.bytes(index)
    }

    func node(level: Int, index: UInt64, in txn: Transaction) throws -> TreeHash? {
        try Self.key(level: level, index: index).withUnsafeBytes { key in
            try txn.get(table, key: key).flatMap { TreeHash($0) }
        }
    }

    /// How many leaves the stored tree holds.
    func builtSize(in txn: Transaction) throws -> UInt64 {
        try txn.withCursor(table) { cursor in
            // The last level-0 key: just before the first key of level 1 (or the table's last key).
            let entry = try cursor.seek(atLeast: Self.key(level: 1, index: 0)) != nil ? try cursor.previous() : try cursor.last()
            guard let entry, entry.key.count == 9, entry.key[0] == 0 else { return 0 }
            return BigEndianKey.uint64(entry.key, at: 1) + 1
        }
    }

    /// MTH(D[lo:hi]) from stored complete subtrees: one read when the range is a complete,
    /// aligned subtree (every range a proof asks for at a built size splits into such), else
    /// split as RFC 9162 splits it.
    func subtreeHash(_ range: Range<UInt64>, in txn: Transaction) throws -> TreeHash {
        let count = range.upperBound - range.lowerBound
        if count == 0 { return MerkleHashing.emptyRoot }
        if count & (count - 1) == 0 && range.lowerBound % count == 0 {
            let level = count.trailingZeroBitCount
            guard let hash = try node(level: level, index: range.lowerBound >> UInt64(level), in: txn) else {
                throw AuditError.nodeMissing(level: level, index: range.lowerBound >> UInt64(level))
            }
            return hash
        }
        let k = MerkleTree.split(count)
        return MerkleHashing.nodeHash(
            try subtreeHash(range.lowerBound..<(range.lowerBound + k), in: txn),
            try subtreeHash((range.lowerBound + k)..<range.upperBound, in: txn))
    }

    /// The root at `size` (≤ the built size).
    func root(size: UInt64, in txn: Transaction) throws -> TreeHash {
        try subtreeHash(0..<size, in: txn)
    }

    /// The frontier of the tree of the first `size` leaves, read from stored subtrees.
    func frontier(size: UInt64, in txn: Transaction) throws -> MerkleFrontier {
        let subtrees = try MerkleFrontier.decomposition(of: size).map { part in
            guard let hash = try node(level: part.level, index: part.index, in: txn) else {
                throw AuditError.nodeMissing(level: part.level, index: part.index)
            }
            return hash
        }
        return MerkleFrontier(size: size, subtrees: subtrees)!
    }

    /// Adds the leaves of records `builtSize + 1 ... through` (at most `limit` of them) and the
    /// nodes they complete, reading the records in `txn`. Returns the new built size.
    func build(through end: UInt64, limit: Int, log: Table, in txn: Transaction) throws -> UInt64 {
        let built = try builtSize(in: txn)
        guard built <= end else { throw AuditError.treeAheadOfLog(treeSize: built, logEnds: end) }
        guard built < end else { return built }
        var frontier = try frontier(size: built, in: txn)
        var pending: [(key: [UInt8], hash: TreeHash)] = []
        pending.reserveCapacity(64)
        try txn.withCursor(log) { cursor in
            var entry = try cursor.seek(atLeast: BigEndianKey.bytes(built + 1))
            var added = 0
            while let current = entry, frontier.size < end, added < limit {
                let position = current.key.count == 8 ? BigEndianKey.uint64(current.key) : 0
                guard position == frontier.size + 1 else { throw AuditError.logGap(expected: frontier.size + 1, found: position) }
                // Hash before writing: a write may move pages a cursor's buffer points into.
                let leaf = MerkleHashing.leafHash(current.value)
                pending.removeAll(keepingCapacity: true)
                frontier.append(leaf) { level, index, hash in pending.append((Self.key(level: level, index: index), hash)) }
                for node in pending {
                    try node.key.withUnsafeBytes { key in
                        try node.hash.withUnsafeBytes { value in try txn.put(table, key: key, value: value, flags: [.noOverwrite]) }
                    }
                }
                added += 1
                entry = try cursor.next()
            }
            if frontier.size < end && added < limit {
                throw AuditError.logGap(expected: frontier.size + 1, found: 0)
            }
        }
        return frontier.size
    }
}
