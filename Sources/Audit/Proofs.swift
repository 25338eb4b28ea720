/// An inclusion proof as printed and bundled: hashes in lowercase hex, the path in RFC 9162
/// order (deepest sibling first).
public struct InclusionProof: Codable, Sendable, Equatable {
    public var position: UInt64
    /// position − 1: RFC 9162 numbers leaves from 0.
    public var leafIndex: UInt64
    public var treeSize: UInt64
    /// SHA-256(0x00 ‖ record bytes).
    public var leafHash: String
    /// SHA-256(record bytes): the hash-chain link (`ledgerhash` on export).
    public var recordHash: String
    public var path: [String]

    public init(position: UInt64, leafIndex: UInt64, treeSize: UInt64, leafHash: String, recordHash: String, path: [String]) {
        self.position = position
        self.leafIndex = leafIndex
        self.treeSize = treeSize
        self.leafHash = leafHash
        self.recordHash = recordHash
        self.path = path
    }

    /// Whether the path takes `leafHash` to `root` (RFC 9162 §2.1.3.2).
    public func verifies(root: TreeHash) -> Bool {
        guard let leaf = TreeHash(hex: leafHash), let path = ProofPath.parse(path) else { return false }
        return MerkleTree.verifyInclusion(leafHash: leaf, index: leafIndex, size: treeSize, path: path, root: root)
    }
}

/// A consistency proof between two signed heads.
public struct ConsistencyProof: Codable, Sendable, Equatable {
    public var oldSize: UInt64
    public var newSize: UInt64
    public var oldRoot: String
    public var newRoot: String
    public var path: [String]

    /// RFC 9162 §2.1.4.2.
    public func verifies() -> Bool {
        guard let old = TreeHash(hex: oldRoot), let new = TreeHash(hex: newRoot), let path = ProofPath.parse(path) else { return false }
        return MerkleTree.verifyConsistency(old: oldSize, new: newSize, oldRoot: old, newRoot: new, path: path)
    }
}

enum ProofPath {
    static func parse(_ hex: [String]) -> [TreeHash]? {
        var out: [TreeHash] = []
        out.reserveCapacity(hex.count)
        for text in hex {
            guard let hash = TreeHash(hex: text) else { return nil }
            out.append(hash)
        }
        return out
    }
}
