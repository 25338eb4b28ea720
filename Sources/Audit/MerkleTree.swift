/// The Merkle tree of RFC 9162 §2.1 (Certificate Transparency v2): the tree hash, inclusion
/// and consistency proofs, and their verification. Pure: no I/O.
///
/// Proofs are generated from any source of subtree hashes: a function from a range of leaf
/// indices `lo..<hi` to MTH(D[lo:hi]). The ledger's source reads stored complete subtrees
/// (O(log n) reads per proof); tests use an in-memory list of leaves.
public enum MerkleTree {
    /// The largest power of two smaller than `n` (n ≥ 2): where RFC 9162 splits a tree of n leaves.
    @inline(__always)
    public static func split(_ n: UInt64) -> UInt64 {
        precondition(n >= 2, "only a tree of two or more leaves is split")
        return 1 << (63 - UInt64((n - 1).leadingZeroBitCount))
    }

    /// MTH(D[lo:hi]) over leaf hashes held in memory (the reference recursion of §2.1.1).
    public static func subtreeHash(_ leaves: [TreeHash], _ range: Range<UInt64>) -> TreeHash {
        let count = range.upperBound - range.lowerBound
        if count == 0 { return MerkleHashing.emptyRoot }
        if count == 1 { return leaves[Int(range.lowerBound)] }
        let k = split(count)
        return MerkleHashing.nodeHash(
            subtreeHash(leaves, range.lowerBound..<(range.lowerBound + k)),
            subtreeHash(leaves, (range.lowerBound + k)..<range.upperBound))
    }

    /// MTH over all of `leaves`.
    public static func root(_ leaves: [TreeHash]) -> TreeHash {
        subtreeHash(leaves, 0..<UInt64(leaves.count))
    }

    // MARK: Generating proofs

    /// PATH(index, D[size]) of §2.1.3.1: the audit path of leaf `index` (0-based) in the tree of
    /// the first `size` leaves, deepest sibling first.
    public static func inclusionPath(
        index: UInt64, size: UInt64, subtree: (Range<UInt64>) throws -> TreeHash
    ) rethrows -> [TreeHash] {
        precondition(index < size, "leaf \(index) is not in a tree of \(size) leaves")
        var siblings: [TreeHash] = []
        var lo: UInt64 = 0
        var hi = size
        while hi - lo > 1 {
            let k = split(hi - lo)
            if index - lo < k {
                siblings.append(try subtree((lo + k)..<hi))
                hi = lo + k
            } else {
                siblings.append(try subtree(lo..<(lo + k)))
                lo += k
            }
        }
        return siblings.reversed()
    }

    /// PROOF(old, D[new]) of §2.1.4.1: the consistency proof between the tree of the first `old`
    /// leaves and the tree of the first `new` leaves. Empty when old is 0 or old == new.
    public static func consistencyPath(
        old: UInt64, new: UInt64, subtree: (Range<UInt64>) throws -> TreeHash
    ) rethrows -> [TreeHash] {
        precondition(old <= new, "a consistency proof goes from a smaller tree to a larger one")
        guard old > 0, old < new else { return [] }
        var nodes: [TreeHash] = []
        var lo: UInt64 = 0
        var hi = new
        var isWholeOldTree = true  // SUBPROOF's b: the old tree is exactly this subtree's left part
        while true {
            let size = hi - lo
            let oldPart = old - lo
            if oldPart == size {
                if !isWholeOldTree { nodes.append(try subtree(lo..<hi)) }
                break
            }
            let k = split(size)
            if oldPart <= k {
                nodes.append(try subtree((lo + k)..<hi))
                hi = lo + k
            } else {
                nodes.append(try subtree(lo..<(lo + k)))
                lo += k
                isWholeOldTree = false
            }
        }
        return nodes.reversed()
    }

    // MARK: Verifying proofs

    /// §2.1.3.2: whether `path` proves that `leafHash` is leaf `index` of the tree of `size`
    /// leaves whose root is `root`.
    public static func verifyInclusion(
        leafHash: TreeHash, index: UInt64, size: UInt64, path: [TreeHash], root: TreeHash
    ) -> Bool {
        guard index < size else { return false }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in path {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = MerkleHashing.nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = MerkleHashing.nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }

    /// §2.1.4.2: whether `path` proves that the tree of `new` leaves with root `newRoot` extends
    /// the tree of `old` leaves with root `oldRoot`, rewriting nothing. The degenerate cases:
    /// every tree extends the empty tree, and a tree extends itself, with an empty proof.
    public static func verifyConsistency(
        old: UInt64, new: UInt64, oldRoot: TreeHash, newRoot: TreeHash, path: [TreeHash]
    ) -> Bool {
        guard old <= new else { return false }
        if old == 0 { return path.isEmpty && oldRoot == MerkleHashing.emptyRoot }
        if old == new { return path.isEmpty && oldRoot == newRoot }
        guard !path.isEmpty else { return false }
        var path = path
        if old & (old - 1) == 0 { path.insert(oldRoot, at: 0) }
        var fn = old - 1
        var sn = new - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHashing.nodeHash(c, fr)
                sr = MerkleHashing.nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = MerkleHashing.nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return fr == oldRoot && sr == newRoot && sn == 0
    }
}

/// The right edge of a growing tree: the roots of its complete subtrees, one per set bit of
/// its size, largest (leftmost) first. Appending a leaf merges equal-sized subtrees like a
/// binary counter carries; the root of the whole tree folds them right to left. This is how
/// `audit verify` recomputes the root at every signed head in one streaming pass.
public struct MerkleFrontier: Sendable, Equatable {
    public private(set) var size: UInt64 = 0
    public private(set) var subtrees: [TreeHash] = []

    public init() {
        subtrees.reserveCapacity(64)
    }

    /// A frontier from stored subtree roots; nil unless there is one per set bit of `size`.
    public init?(size: UInt64, subtrees: [TreeHash]) {
        guard subtrees.count == size.nonzeroBitCount else { return nil }
        self.size = size
        self.subtrees = subtrees
        self.subtrees.reserveCapacity(64)
    }

    @inline(__always)
    public mutating func append(_ leaf: TreeHash) {
        var hash = leaf
        var carry = size
        while carry & 1 == 1 {
            hash = MerkleHashing.nodeHash(subtrees.removeLast(), hash)
            carry >>= 1
        }
        subtrees.append(hash)
        size += 1
    }

    /// Appends, reporting every complete subtree it finishes: the leaf itself (level 0) and each
    /// node the carries make, as (level, index within the level, hash).
    public mutating func append(_ leaf: TreeHash, completed: (Int, UInt64, TreeHash) throws -> Void) rethrows {
        let index = size
        var hash = leaf
        var level = 0
        try completed(0, index, hash)
        while (index >> UInt64(level)) & 1 == 1 {
            hash = MerkleHashing.nodeHash(subtrees.removeLast(), hash)
            level += 1
            try completed(level, index >> UInt64(level), hash)
        }
        subtrees.append(hash)
        size += 1
    }

    /// MTH of the leaves appended so far.
    public func root() -> TreeHash {
        guard var hash = subtrees.last else { return MerkleHashing.emptyRoot }
        for subtree in subtrees.dropLast().reversed() { hash = MerkleHashing.nodeHash(subtree, hash) }
        return hash
    }

    /// The complete subtrees that make up a tree of `size` leaves, left to right, as (level,
    /// index within the level): the subtree at level l, index i covers leaves i·2^l ..< (i+1)·2^l.
    public static func decomposition(of size: UInt64) -> [(level: Int, index: UInt64)] {
        var parts: [(level: Int, index: UInt64)] = []
        var start: UInt64 = 0
        for level in stride(from: 63, through: 0, by: -1) where size & (1 << UInt64(level)) != 0 {
            parts.append((level, start >> UInt64(level)))
            start += 1 << UInt64(level)
        }
        return parts
    }
}
