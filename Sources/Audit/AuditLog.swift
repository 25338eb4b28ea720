import Foundation
import LMDB
import Ledger

/// The audit side of a ledger: the RFC 9162 Merkle tree over its log (kept in `audit_nodes`),
/// the signed tree heads (kept in `audit_heads`), and the proofs built from them.
///
///     let audit = try AuditLog(ledger: ledger)
///     let signed = try await audit.checkpoint(key: try AuditSigningKey.load(path: "audit-signing.key"))
///     let proof = try audit.inclusionProof(position: 42, head: signed.head)
///
/// The tree's leaf i is record i+1's stored bytes, exactly as `docs/storage-format.md` lays them
/// out; `docs/audit.md` says how an auditor recomputes everything from them.
public final class AuditLog: Sendable {
    public let ledger: Ledger
    let log: Table
    /// Nil when the ledger is read-only and no tree was ever built.
    let store: AuditStore?

    /// Leaves added per write transaction when building: bounded so the writer stays responsive.
    public static let buildChunkLeaves = 50_000
    /// Most events one bundle holds.
    public static let bundleEventsMax = 100_000

    /// Opens the audit tables of `ledger`, creating them when the ledger is writable.
    public init(ledger: Ledger) throws {
        self.ledger = ledger
        log = try ledger.table(named: "log", create: false)
        do {
            store = AuditStore(
                nodes: NodeStore(table: try ledger.table(named: NodeStore.tableName, create: ledger.isWritable)),
                heads: try ledger.table(named: AuditStore.headsTableName, create: ledger.isWritable))
        } catch LMDBError.notFound {
            store = nil
        }
    }

    func requireStore() throws -> AuditStore {
        guard let store else { throw AuditError.noAuditTree }
        return store
    }

    // MARK: Building and signing

    /// Adds every record after the last built leaf to the tree, a chunk per write transaction
    /// on the ledger's writer (between append batches). Returns the tree's size.
    @discardableResult
    public func catchUp(chunkLeaves: Int = AuditLog.buildChunkLeaves) async throws -> UInt64 {
        let store = try requireStore()
        while true {
            let (built, head) = try await ledger.performWrite { [ledger, log] txn in
                let head = try ledger.headPosition(in: txn)
                return (try store.nodes.build(through: head, limit: chunkLeaves, log: log, in: txn), head)
            }
            if built >= head { return built }
        }
    }

    public struct Checkpoint: Sendable, Equatable {
        public var head: SignedTreeHead
        /// False when a head of this size was already signed (then it is returned unchanged).
        public var isNew: Bool
    }

    /// Builds the tree through the log's head and signs (size, root, time) with `key`, storing
    /// the signed head. The server calls this on its schedule (`CheckpointPolicy`); the CLI's
    /// `audit checkpoint` on demand. `clock` is microseconds since the epoch.
    public func checkpoint(key: AuditSigningKey, clock: @escaping @Sendable () -> Int64 = Ledger.systemClockMicros) async throws -> Checkpoint {
        let store = try requireStore()
        try await catchUp()
        return try await ledger.performWrite { [ledger, log] txn in
            let size = try ledger.headPosition(in: txn)
            guard size > 0 else { throw AuditError.emptyLog }
            let built = try store.nodes.build(through: size, limit: Int.max, log: log, in: txn)
            precondition(built == size, "the tree was built to \(built), not to the head \(size)")
            if let existing = try store.head(treeSize: size, in: txn) { return Checkpoint(head: existing, isNew: false) }
            let root = try store.nodes.root(size: size, in: txn)
            let lastRecorded = try RecordBytes.read(at: size, log: log, in: txn) { try RecordCodec.decode($0).recordedMicros }
            let previous = try store.latestHead(in: txn)
            let micros = max(clock(), lastRecorded, previous?.ledgerMicros ?? .min)
            let head = try SignedTreeHead.sign(treeSize: size, root: root, ledgerMicros: micros, key: key)
            try txn.put(store.heads, key: BigEndianKey.bytes(size), value: try head.encoded(), flags: [.noOverwrite])
            return Checkpoint(head: head, isNew: true)
        }
    }

    /// Signs a head when `policy` says one is due; nil when none was. For the server's timer.
    public func checkpointIfDue(
        key: AuditSigningKey, policy: CheckpointPolicy, clock: @escaping @Sendable () -> Int64 = Ledger.systemClockMicros
    ) async throws -> SignedTreeHead? {
        let due = policy.isDue(headPosition: try ledger.headPosition(), latest: try latestHead(), nowMicros: clock())
        guard due else { return nil }
        let checkpoint = try await self.checkpoint(key: key, clock: clock)
        return checkpoint.isNew ? checkpoint.head : nil
    }

    // MARK: Reading

    /// How many leaves the stored tree holds (0 when there is none).
    public func builtSize() throws -> UInt64 {
        guard let store else { return 0 }
        return try ledger.read { txn in try store.nodes.builtSize(in: txn) }
    }

    /// The root of the first `size` leaves, from the stored tree.
    public func root(size: UInt64) throws -> TreeHash {
        let store = try requireStore()
        return try ledger.read { txn in try store.nodes.root(size: size, in: txn) }
    }

    /// Every signed head with a tree size of at least `treeSize`, smallest first.
    public func signedHeads(from treeSize: UInt64 = 0) throws -> [SignedTreeHead] {
        guard let store else { return [] }
        return try ledger.read { txn in try store.heads(from: treeSize, in: txn) }
    }

    public func latestHead() throws -> SignedTreeHead? {
        guard let store else { return nil }
        return try ledger.read { txn in try store.latestHead(in: txn) }
    }

    /// The first head signed at or after `micros` (ledger time): it covers every record the
    /// ledger had recorded by then (a head says "at ledgerTime the log held exactly treeSize
    /// records"). For `show --known-at`: the signed head that vouches for a past answer.
    public func firstHead(signedAtOrAfter micros: Int64) throws -> SignedTreeHead? {
        try signedHeads().first { ($0.ledgerMicros ?? .min) >= micros }
    }

    public func head(treeSize: UInt64) throws -> SignedTreeHead? {
        guard let store else { return nil }
        return try ledger.read { txn in try store.head(treeSize: treeSize, in: txn) }
    }

    /// The positions of every event of `stream` (an invoice key, exactly as stored), oldest first.
    public func positions(ofStream stream: String) throws -> [UInt64] {
        var positions: [UInt64] = []
        let chunk = ledger.options.readEventsMax
        while true {
            let records = try ledger.stream(stream, fromVersion: UInt64(positions.count) + 1, limit: chunk)
            positions += records.map(\.position)
            if records.count < chunk { return positions }
        }
    }

    /// A record's stored bytes.
    public func recordBytes(at position: UInt64) throws -> [UInt8]? {
        try ledger.read { txn in try RecordBytes.read(at: position, log: log, in: txn) { Array($0) } }
    }

    // MARK: Proofs

    /// The proof that the record at `position` is leaf position−1 of the tree `head` signed.
    /// Throws `proofFails` when it does not verify: the record or the tree changed since.
    public func inclusionProof(position: UInt64, head: SignedTreeHead) throws -> InclusionProof {
        try inclusionProofs(positions: [position], head: head)[0]
    }

    /// Proofs for many positions, read in one snapshot.
    public func inclusionProofs(positions: [UInt64], head: SignedTreeHead) throws -> [InclusionProof] {
        let store = try requireStore()
        guard let root = head.root else { throw AuditError.proofFails(position: nil, treeSize: head.treeSize) }
        return try ledger.read { txn in
            try positions.map { position in
                guard position >= 1, position <= head.treeSize else { throw AuditError.noSignedHead(needed: position) }
                let (leaf, recordHash) = try RecordBytes.read(at: position, log: log, in: txn) { bytes in
                    (MerkleHashing.leafHash(bytes), MerkleHashing.recordHash(bytes))
                }
                let path = try MerkleTree.inclusionPath(index: position - 1, size: head.treeSize) { range in
                    try store.nodes.subtreeHash(range, in: txn)
                }
                let proof = InclusionProof(
                    position: position, leafIndex: position - 1, treeSize: head.treeSize, leafHash: leaf.hex,
                    recordHash: recordHash.hex, path: path.map(\.hex))
                guard MerkleTree.verifyInclusion(leafHash: leaf, index: position - 1, size: head.treeSize, path: path, root: root) else {
                    throw AuditError.proofFails(position: position, treeSize: head.treeSize)
                }
                return proof
            }
        }
    }

    /// The proof that the tree `new` signed extends the tree `old` signed. Throws `proofFails`
    /// when it does not verify against both signed roots.
    public func consistencyProof(from old: SignedTreeHead, to new: SignedTreeHead) throws -> ConsistencyProof {
        let store = try requireStore()
        guard old.treeSize <= new.treeSize else { return try consistencyProof(from: new, to: old) }
        let path = try ledger.read { txn in
            try MerkleTree.consistencyPath(old: old.treeSize, new: new.treeSize) { range in try store.nodes.subtreeHash(range, in: txn) }
        }
        let proof = ConsistencyProof(
            oldSize: old.treeSize, newSize: new.treeSize, oldRoot: old.rootHash, newRoot: new.rootHash, path: path.map(\.hex))
        guard proof.verifies() else { throw AuditError.proofFails(position: nil, treeSize: new.treeSize) }
        return proof
    }
}

/// The audit tables, opened.
struct AuditStore: Sendable {
    let nodes: NodeStore
    /// tree size (8 bytes, big-endian) → the signed head, JSON.
    let heads: Table

    static let headsTableName = "audit_heads"

    func head(treeSize: UInt64, in txn: Transaction) throws -> SignedTreeHead? {
        try BigEndianKey.bytes(treeSize).withUnsafeBytes { key in
            try txn.get(heads, key: key).map { try SignedTreeHead.decode($0) }
        }
    }

    func latestHead(in txn: Transaction) throws -> SignedTreeHead? {
        try txn.withCursor(heads) { cursor in try cursor.last().map { try SignedTreeHead.decode($0.value) } }
    }

    func heads(from treeSize: UInt64, in txn: Transaction) throws -> [SignedTreeHead] {
        try txn.withCursor(heads) { cursor in
            var out: [SignedTreeHead] = []
            var entry = try cursor.seek(atLeast: BigEndianKey.bytes(treeSize))
            while let current = entry {
                out.append(try SignedTreeHead.decode(current.value))
                entry = try cursor.next()
            }
            return out
        }
    }
}

/// Reading a record's stored bytes straight from the `log` table (the leaf bytes).
enum RecordBytes {
    static func read<T>(at position: UInt64, log: Table, in txn: Transaction, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        try BigEndianKey.bytes(position).withUnsafeBytes { key in
            guard let bytes = try txn.get(log, key: key) else { throw AuditError.noRecord(position: position) }
            return try body(bytes)
        }
    }
}

/// When the server signs a head by itself: after `everyEvents` new events, or `everySeconds`
/// after the last head when there is anything new. Zero turns a trigger off.
public struct CheckpointPolicy: Sendable, Equatable {
    public var everyEvents: UInt64
    public var everySeconds: Double

    public init(everyEvents: UInt64 = 10_000, everySeconds: Double = 60) {
        self.everyEvents = everyEvents
        self.everySeconds = everySeconds
    }

    public func isDue(headPosition: UInt64, latest: SignedTreeHead?, nowMicros: Int64) -> Bool {
        let signed = latest?.treeSize ?? 0
        guard headPosition > signed else { return false }
        if everyEvents > 0 && headPosition - signed >= everyEvents { return true }
        guard everySeconds > 0 else { return false }
        guard let last = latest?.ledgerMicros else { return true }
        return Double(nowMicros - last) >= everySeconds * 1_000_000
    }
}
