import Dispatch
import LMDB
import Ledger

/// One thing verification found wrong.
public struct AuditProblem: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        /// The hash chain or the log's positions are broken (`fapiao check`'s findings).
        case chain
        /// A record's bytes differ from those its leaf hash was built from, or from what a proof commits to.
        case recordAltered = "record_altered"
        /// The root recomputed from the records differs from the one a head signed.
        case rootMismatch = "root_mismatch"
        /// A signed head covers more records than the log has.
        case headBeyondLog = "head_beyond_log"
        case badSignature = "bad_signature"
        /// Validly signed, but not by a key the auditor trusts.
        case untrustedKey = "untrusted_key"
        /// The stored audit tree disagrees with the records (derived data, damaged or altered).
        case auditTree = "audit_tree"
        /// A bundle's event does not match its record, or its proof does not verify.
        case eventMismatch = "event_mismatch"
        case badProof = "bad_proof"
    }

    public var kind: Kind
    /// The first position concerned, when one can be named.
    public var position: UInt64?
    /// The signed head concerned, if any.
    public var treeSize: UInt64?
    public var message: String

    public init(kind: Kind, position: UInt64? = nil, treeSize: UInt64? = nil, message: String) {
        self.kind = kind
        self.position = position
        self.treeSize = treeSize
        self.message = message
    }

    public var description: String { message }

    /// Where it sorts: by position, else by the head's size.
    var order: UInt64 { position ?? treeSize ?? 0 }
}

/// What `audit verify` found.
public struct AuditReport: Codable, Sendable {
    public var intact: Bool
    /// Records re-read (positions `fromPosition...throughPosition`).
    public var recordsChecked: UInt64
    public var fromPosition: UInt64
    public var throughPosition: UInt64
    /// Records whose leaf hash was compared with the one the audit tree stored at append.
    public var leavesCompared: UInt64
    /// Signed heads whose root was recomputed and whose signature was checked.
    public var headsChecked: Int
    public var latestHead: UInt64?
    /// MTH of records 1...throughPosition as recomputed.
    public var rootHash: String
    /// The keys the checked heads were signed with (base64).
    public var publicKeys: [String]
    public var seconds: Double
    /// Sorted by position; the first names the first bad position.
    public var problems: [AuditProblem]
    /// Said when something could not be checked (no heads, no audit tree).
    public var notes: [String]

    public var firstBadPosition: UInt64? { problems.compactMap(\.position).min() }
}

/// Re-reads a ledger's log and checks it against its hash chain, its audit tree and every
/// signed head. Two streaming passes run side by side (one per core): the ledger's own chain
/// check (`Ledger.verifyChain`) and the Merkle pass (leaf hashes, roots at every head).
public struct AuditVerifier {
    public let audit: AuditLog
    /// Only heads signed by one of these keys (base64) are trusted; nil trusts each head's own key.
    public var trustedKeys: Set<String>?

    /// Records per read snapshot: bounded so verification never pins old pages for long.
    static let chunkRecords = 50_000
    /// Problems kept per kind: the first ones name the place; a thousand more say nothing new.
    static let problemsPerKindMax = 10

    public init(audit: AuditLog, trustedKeys: Set<String>? = nil) {
        self.audit = audit
        self.trustedKeys = trustedKeys
    }

    /// Verifies records `since + 1` to the head (all when `since` is nil). `since` must be the
    /// size of a signed head: the stored tree's state at that size is checked against the
    /// head's signed root, and the record at `since` against its leaf, so the pass can start
    /// there. `progress` gets the last position checked, after each chunk.
    public func verify(since: UInt64? = nil, progress: (@Sendable (UInt64) -> Void)? = nil) throws -> AuditReport {
        let clock = ContinuousClock()
        let started = clock.now
        let ledger = audit.ledger
        // Heads first: a head is only ever signed at a size the log had reached, so the log's end
        // read afterwards covers every head even while a writer appends and signs meanwhile.
        let heads = try audit.signedHeads()
        let end = try ledger.headPosition()
        var problems = ProblemList()
        var notes: [String] = []
        checkSignatures(heads, into: &problems)

        var frontier = MerkleFrontier()
        if let since {
            guard let anchor = heads.first(where: { $0.treeSize == since }) else { throw AuditError.unknownHead(treeSize: since) }
            frontier = try anchoredFrontier(at: anchor, problems: &problems)
        }
        let start = frontier.size + 1
        let laterHeads = heads.filter { $0.treeSize >= start }
        if heads.isEmpty { notes.append("no signed tree heads, so no root was checked against a signature; sign one with `fapiao audit checkpoint`") }

        let merkle: MerklePass
        if problems.isFatal {
            merkle = MerklePass(frontier: frontier)
        } else {
            let chainTask: @Sendable () throws -> ChainReport = { try ledger.verifyChain(from: start, through: end) }
            let (chain, pass) = try inParallel(chainTask) {
                try merklePass(from: frontier, through: end, heads: laterHeads, progress: progress)
            }
            merkle = pass
            if let problem = chain.problem {
                problems.add(AuditProblem(kind: .chain, position: problem.position, message: problem.description))
            }
        }
        problems.add(contentsOf: merkle.problems)
        for head in laterHeads where head.treeSize > merkle.frontier.size && !problems.isFatal {
            problems.add(AuditProblem(
                kind: .headBeyondLog, position: merkle.frontier.size + 1, treeSize: head.treeSize,
                message: "the head signed at size \(head.treeSize) covers \(head.treeSize) records, but the log holds only \(merkle.frontier.size): records from position \(merkle.frontier.size + 1) on were removed"))
        }
        return AuditReport(
            intact: problems.items.isEmpty, recordsChecked: merkle.frontier.size - (start - 1), fromPosition: start,
            throughPosition: merkle.frontier.size, leavesCompared: merkle.leavesCompared, headsChecked: merkle.headsChecked + (since == nil ? 0 : 1),
            latestHead: heads.last?.treeSize, rootHash: merkle.frontier.root().hex,
            publicKeys: Array(Set(heads.map(\.publicKey))).sorted(), seconds: (clock.now - started).seconds,
            problems: problems.sorted(), notes: notes)
    }

    private func checkSignatures(_ heads: [SignedTreeHead], into problems: inout ProblemList) {
        for head in heads {
            if head.root == nil {
                problems.add(AuditProblem(kind: .badSignature, treeSize: head.treeSize, message: "the head at size \(head.treeSize) has no valid root hash (\(head.rootHash))"))
            } else if !head.hasValidSignature {
                problems.add(AuditProblem(kind: .badSignature, treeSize: head.treeSize, message: "the signature of the head at size \(head.treeSize) does not verify with its key \(head.publicKey): the head was altered or forged"))
            } else if let trustedKeys, !trustedKeys.contains(head.publicKey) {
                problems.add(AuditProblem(kind: .untrustedKey, treeSize: head.treeSize, message: "the head at size \(head.treeSize) is signed by \(head.publicKey), which is not a trusted key"))
            }
        }
    }

    /// The tree's state at a verified head, read from the stored tree and checked against the
    /// head's signed root; the record at that size is checked against its signed leaf.
    private func anchoredFrontier(at head: SignedTreeHead, problems: inout ProblemList) throws -> MerkleFrontier {
        let store = try audit.requireStore()
        let frontier = try audit.ledger.read { txn in try store.nodes.frontier(size: head.treeSize, in: txn) }
        guard frontier.root() == head.root else {
            problems.addFatal(AuditProblem(
                kind: .auditTree, treeSize: head.treeSize,
                message: "the stored audit tree at size \(head.treeSize) does not match the signed head: verify without --since"))
            return frontier
        }
        do {
            _ = try audit.inclusionProof(position: head.treeSize, head: head)
        } catch AuditError.proofFails {
            problems.addFatal(AuditProblem(
                kind: .recordAltered, position: head.treeSize, treeSize: head.treeSize,
                message: "position \(head.treeSize), the last record the head at size \(head.treeSize) signed, differs from its signed leaf: verify without --since"))
        }
        return frontier
    }

    /// The Merkle pass: every record's leaf hash, compared with the stored leaf; the root at
    /// every signed head, compared with the signed root and the stored tree's root.
    private func merklePass(
        from start: MerkleFrontier, through end: UInt64, heads: [SignedTreeHead], progress: (@Sendable (UInt64) -> Void)?
    ) throws -> MerklePass {
        var pass = MerklePass(frontier: start)
        var lastKey = start.size
        var nextHead = heads.startIndex
        var storedLeavesEnd = false
        let store = audit.store
        let log = audit.log
        while lastKey < end {
            let before = lastKey
            try audit.ledger.read { txn in
                try txn.withCursor(log) { cursor in
                    try withOptionalCursor(store?.nodes.table, txn) { leaves in
                        var stored = storedLeavesEnd ? nil : try leaves?.seek(exactly: NodeStore.key(level: 0, index: pass.frontier.size))
                        var entry = try cursor.seek(atLeast: BigEndianKey.bytes(lastKey + 1))
                        var inChunk = 0
                        while let current = entry, inChunk < Self.chunkRecords {
                            let key = current.key.count == 8 ? BigEndianKey.uint64(current.key) : 0
                            if key > end { lastKey = end; break }
                            let leaf = MerkleHashing.leafHash(current.value)
                            if let storedEntry = stored {
                                if storedEntry.key.count == 9 && storedEntry.key[0] == 0 {
                                    pass.compare(leaf, index: pass.frontier.size, key: key, stored: storedEntry)
                                    stored = try leaves?.next()
                                } else {
                                    stored = nil  // past the last stored leaf: the tree is not built further
                                }
                            }
                            pass.frontier.append(leaf)
                            while nextHead < heads.endIndex && heads[nextHead].treeSize == pass.frontier.size {
                                try pass.check(heads[nextHead], store: store, txn: txn)
                                nextHead += 1
                            }
                            lastKey = key
                            inChunk += 1
                            entry = try cursor.next()
                        }
                        if entry == nil { lastKey = end }
                        if stored == nil { storedLeavesEnd = true }
                    }
                }
            }
            progress?(lastKey)
            if lastKey == before { break }
        }
        return pass
    }

}

/// The state of the Merkle pass.
struct MerklePass {
    var frontier: MerkleFrontier
    var problems = ProblemList()
    var headsChecked = 0
    var leavesCompared: UInt64 = 0
    /// The last head whose root matched: a mismatch at a later head lies after it.
    var lastGoodHead: UInt64 = 0

    init(frontier: MerkleFrontier) {
        self.frontier = frontier
        lastGoodHead = frontier.size
    }

    /// Compares a recomputed leaf with the stored level-0 entry the cursor stands on.
    mutating func compare(_ leaf: TreeHash, index: UInt64, key: UInt64, stored: Cursor.Entry) {
        let position = index + 1
        guard BigEndianKey.uint64(stored.key, at: 1) == index else {
            problems.add(AuditProblem(kind: .auditTree, position: position, message: "position \(position): the audit tree has no leaf for it"))
            return
        }
        let storedLeaf = TreeHash(stored.value)
        leavesCompared += 1
        guard storedLeaf != leaf else { return }
        let place = key == position ? "the record at position \(position)" : "the \(position)th record of the log (stored under key \(key))"
        problems.add(AuditProblem(
            kind: .recordAltered, position: position,
            message: "\(place) differs from the record the audit tree took in when it was appended: leaf hash \(leaf.hex), stored \(storedLeaf?.hex ?? "(not 32 bytes)")"))
    }

    mutating func check(_ head: SignedTreeHead, store: AuditStore?, txn: Transaction) throws {
        headsChecked += 1
        let root = frontier.root()
        if let signed = head.root, root != signed {
            problems.add(AuditProblem(
                kind: .rootMismatch, position: nil, treeSize: head.treeSize,
                message: "the head signed at size \(head.treeSize) has root \(signed.hex), but records 1...\(head.treeSize) hash to \(root.hex): a record in \(lastGoodHead + 1)...\(head.treeSize) was altered, removed, inserted or reordered after it was signed"))
        } else {
            lastGoodHead = head.treeSize
        }
        guard let store, head.treeSize <= (try store.nodes.builtSize(in: txn)) else { return }
        let storedRoot = try? store.nodes.root(size: head.treeSize, in: txn)
        if storedRoot != root {
            problems.add(AuditProblem(
                kind: .auditTree, treeSize: head.treeSize,
                message: "the stored audit tree's root at size \(head.treeSize) is \(storedRoot?.hex ?? "missing"), but the records hash to \(root.hex)"))
        }
    }
}

/// Problems found, at most `problemsPerKindMax` of each kind.
struct ProblemList {
    private(set) var items: [AuditProblem] = []
    private var counts: [AuditProblem.Kind: Int] = [:]
    /// Set when continuing would only repeat the finding.
    private(set) var isFatal = false

    mutating func add(_ problem: AuditProblem) {
        let count = counts[problem.kind, default: 0]
        guard count < AuditVerifier.problemsPerKindMax else { return }
        counts[problem.kind] = count + 1
        items.append(problem)
    }

    mutating func addFatal(_ problem: AuditProblem) {
        add(problem)
        isFatal = true
    }

    mutating func add(contentsOf list: ProblemList) {
        for problem in list.items { add(problem) }
    }

    func sorted() -> [AuditProblem] {
        items.enumerated().sorted { ($0.element.order, $0.offset) < ($1.element.order, $1.offset) }.map(\.element)
    }
}

/// Runs `background` on another thread while `foreground` runs on this one; returns both.
func inParallel<A: Sendable, B>(_ background: @escaping @Sendable () throws -> A, _ foreground: () throws -> B) throws -> (A, B) {
    let box = ResultBox<A>()
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        box.result = Result { try background() }
        done.signal()
    }
    let local = Result { try foreground() }
    done.wait()
    return (try box.result!.get(), try local.get())
}

/// Written by one thread before it signals, read by another after the wait.
private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

private func withOptionalCursor<T>(_ table: Table?, _ txn: Transaction, _ body: (Cursor?) throws -> T) throws -> T {
    guard let table else { return try body(nil) }
    return try txn.withCursor(table) { cursor in try body(cursor) }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
