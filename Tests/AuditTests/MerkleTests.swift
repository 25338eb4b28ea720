import Crypto
import Foundation
import Testing
@testable import Audit

/// The Merkle tree against RFC 9162's published values and against a second, naive
/// implementation written here from the RFC's definitions (recursion over byte arrays).
@Suite struct MerkleTests {
    // MARK: The Certificate Transparency reference vectors

    /// The eight leaf inputs of the CT reference tests (RFC 6962/9162 test data).
    static let ctInputs = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .map { Hex.decode($0)! }
    static var ctLeaves: [TreeHash] { ctInputs.map { MerkleHashing.leafHash($0) } }

    /// MTH for sizes 0...8.
    static let ctRoots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    static let ctInclusion: [(index: UInt64, size: UInt64, path: [String])] = [
        (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
        (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
        (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
        (0, 1, []),
    ]

    static let ctConsistency: [(old: UInt64, new: UInt64, path: [String])] = [
        (1, 1, []),
        (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
        (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
        (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    ]

    @Test(arguments: 0...8) func rootsMatchTheReferenceVectors(size: Int) {
        let leaves = Array(Self.ctLeaves.prefix(size))
        #expect(MerkleTree.root(leaves).hex == Self.ctRoots[size])
        var frontier = MerkleFrontier()
        for leaf in leaves { frontier.append(leaf) }
        #expect(frontier.root().hex == Self.ctRoots[size])
    }

    @Test func inclusionProofsMatchTheReferenceVectors() {
        let leaves = Self.ctLeaves
        for vector in Self.ctInclusion {
            let path = MerkleTree.inclusionPath(index: vector.index, size: vector.size) { MerkleTree.subtreeHash(leaves, $0) }
            #expect(path.map(\.hex) == vector.path, "PATH(\(vector.index), D[\(vector.size)])")
            let root = TreeHash(hex: Self.ctRoots[Int(vector.size)])!
            #expect(MerkleTree.verifyInclusion(leafHash: leaves[Int(vector.index)], index: vector.index, size: vector.size, path: path, root: root))
        }
    }

    @Test func consistencyProofsMatchTheReferenceVectors() {
        let leaves = Self.ctLeaves
        for vector in Self.ctConsistency {
            let path = MerkleTree.consistencyPath(old: vector.old, new: vector.new) { MerkleTree.subtreeHash(leaves, $0) }
            #expect(path.map(\.hex) == vector.path, "PROOF(\(vector.old), D[\(vector.new)])")
            #expect(MerkleTree.verifyConsistency(
                old: vector.old, new: vector.new, oldRoot: TreeHash(hex: Self.ctRoots[Int(vector.old)])!,
                newRoot: TreeHash(hex: Self.ctRoots[Int(vector.new)])!, path: path))
        }
    }

    // MARK: Against an independent implementation

    static let sizeMax = 40
    /// Leaf inputs of several lengths.
    static let inputs: [[UInt8]] = (0..<sizeMax).map { i in (0..<(i % 5 * 7)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) } }

    @Test func rootsAndProofsAgreeWithTheNaiveImplementation() {
        let leaves = Self.inputs.map { MerkleHashing.leafHash($0) }
        for size in 0...Self.sizeMax {
            let data = Array(Self.inputs.prefix(size))
            #expect(MerkleTree.root(Array(leaves.prefix(size))).bytes == Naive.mth(data), "root at \(size)")
            for index in 0..<size {
                let path = MerkleTree.inclusionPath(index: UInt64(index), size: UInt64(size)) { MerkleTree.subtreeHash(leaves, $0) }
                #expect(path.map(\.bytes) == Naive.path(index, data), "PATH(\(index), D[\(size)])")
            }
            for old in 1..<max(size, 1) {
                let proof = MerkleTree.consistencyPath(old: UInt64(old), new: UInt64(size)) { MerkleTree.subtreeHash(leaves, $0) }
                #expect(proof.map(\.bytes) == Naive.subproof(old, data, true), "PROOF(\(old), D[\(size)])")
            }
        }
    }

    @Test func everyInclusionProofVerifiesAndNoAlteredOneDoes() {
        let leaves = Self.inputs.map { MerkleHashing.leafHash($0) }
        for size in UInt64(1)...UInt64(Self.sizeMax) {
            let root = MerkleTree.subtreeHash(leaves, 0..<size)
            for index in 0..<size {
                let leaf = leaves[Int(index)]
                let path = MerkleTree.inclusionPath(index: index, size: size) { MerkleTree.subtreeHash(leaves, $0) }
                #expect(MerkleTree.verifyInclusion(leafHash: leaf, index: index, size: size, path: path, root: root))
                for altered in Alterations.of(path) {
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: index, size: size, path: altered, root: root),
                            "an altered proof of \(index) in \(size) verified")
                }
                #expect(!MerkleTree.verifyInclusion(leafHash: Alterations.flip(leaf), index: index, size: size, path: path, root: root))
                #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: index, size: size, path: path, root: Alterations.flip(root)))
                #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: size, size: size, path: path, root: root))
                if size > 1 {
                    let other = (index + 1) % size
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaf, index: other, size: size, path: path, root: root) || leaves[Int(other)] == leaf)
                }
            }
        }
    }

    @Test func everyConsistencyProofVerifiesAndNoAlteredOneDoes() {
        let leaves = Self.inputs.map { MerkleHashing.leafHash($0) }
        let roots = (0...UInt64(Self.sizeMax)).map { MerkleTree.subtreeHash(leaves, 0..<$0) }
        for new in UInt64(0)...UInt64(Self.sizeMax) {
            for old in 0...new {
                let path = MerkleTree.consistencyPath(old: old, new: new) { MerkleTree.subtreeHash(leaves, $0) }
                #expect(MerkleTree.verifyConsistency(old: old, new: new, oldRoot: roots[Int(old)], newRoot: roots[Int(new)], path: path),
                        "PROOF(\(old), D[\(new)])")
                guard old > 0, old < new else { continue }
                for altered in Alterations.of(path) {
                    #expect(!MerkleTree.verifyConsistency(old: old, new: new, oldRoot: roots[Int(old)], newRoot: roots[Int(new)], path: altered))
                }
                // A rewritten history: a different old tree of the same size.
                #expect(!MerkleTree.verifyConsistency(old: old, new: new, oldRoot: Alterations.flip(roots[Int(old)]), newRoot: roots[Int(new)], path: path))
                #expect(!MerkleTree.verifyConsistency(old: old, new: new, oldRoot: roots[Int(old)], newRoot: Alterations.flip(roots[Int(new)]), path: path))
                #expect(!MerkleTree.verifyConsistency(old: new, new: old, oldRoot: roots[Int(new)], newRoot: roots[Int(old)], path: path))
            }
        }
        #expect(!MerkleTree.verifyConsistency(old: 4, new: 4, oldRoot: roots[4], newRoot: roots[5], path: []))
        #expect(!MerkleTree.verifyConsistency(old: 0, new: 8, oldRoot: roots[1], newRoot: roots[8], path: []))
    }

    @Test func theFrontierReportsEveryCompleteSubtree() {
        let leaves = Self.inputs.map { MerkleHashing.leafHash($0) }
        var frontier = MerkleFrontier()
        var nodes: [String: TreeHash] = [:]
        for leaf in leaves {
            frontier.append(leaf) { level, index, hash in nodes["\(level)/\(index)"] = hash }
            let parts = MerkleFrontier.decomposition(of: frontier.size)
            #expect(parts.count == frontier.subtrees.count)
            for (part, hash) in zip(parts, frontier.subtrees) {
                let start = part.index << UInt64(part.level)
                #expect(hash == MerkleTree.subtreeHash(leaves, start..<(start + (1 << UInt64(part.level)))))
                #expect(nodes["\(part.level)/\(part.index)"] == hash)
            }
            #expect(frontier.root() == MerkleTree.subtreeHash(leaves, 0..<frontier.size))
        }
        // 40 leaves make 40 + 20 + 10 + 5 + 2 + 1 complete subtrees.
        #expect(nodes.count == 78)
    }

    @Test func hashesParseAndPrint() {
        let hash = MerkleHashing.leafHash([1, 2, 3])
        #expect(TreeHash(hex: hash.hex) == hash)
        #expect(TreeHash(hex: hash.hex.uppercased()) == hash)
        #expect(TreeHash(hex: "zz" + hash.hex.dropFirst(2)) == nil)
        #expect(TreeHash(hex: String(hash.hex.dropFirst())) == nil)
        #expect(hash.bytes == Array(SHA256.hash(data: [0, 1, 2, 3])))
    }
}

/// RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 as written: recursion over the data, no shared code.
enum Naive {
    static func sha256(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }

    static func k(_ n: Int) -> Int {
        var k = 1
        while k * 2 < n { k *= 2 }
        return k
    }

    static func mth(_ d: [[UInt8]]) -> [UInt8] {
        switch d.count {
        case 0: return sha256([])
        case 1: return sha256([0] + d[0])
        default:
            let k = k(d.count)
            return sha256([1] + mth(Array(d[..<k])) + mth(Array(d[k...])))
        }
    }

    static func path(_ m: Int, _ d: [[UInt8]]) -> [[UInt8]] {
        guard d.count > 1 else { return [] }
        let k = k(d.count)
        if m < k { return path(m, Array(d[..<k])) + [mth(Array(d[k...]))] }
        return path(m - k, Array(d[k...])) + [mth(Array(d[..<k]))]
    }

    static func subproof(_ m: Int, _ d: [[UInt8]], _ b: Bool) -> [[UInt8]] {
        if m == d.count { return b ? [] : [mth(d)] }
        let k = k(d.count)
        if m <= k { return subproof(m, Array(d[..<k]), b) + [mth(Array(d[k...]))] }
        return subproof(m - k, Array(d[k...]), false) + [mth(Array(d[..<k]))]
    }
}

/// Ways to spoil a proof: flip a bit in each element, drop the first or last, add one, swap two.
enum Alterations {
    static func flip(_ hash: TreeHash) -> TreeHash {
        var bytes = hash.bytes
        bytes[7] ^= 0x01
        return TreeHash(bytes)!
    }

    static func of(_ path: [TreeHash]) -> [[TreeHash]] {
        var out: [[TreeHash]] = []
        for index in path.indices {
            var altered = path
            altered[index] = flip(altered[index])
            out.append(altered)
        }
        if !path.isEmpty {
            out.append(Array(path.dropLast()))
            out.append(Array(path.dropFirst()))
        }
        out.append(path + [MerkleHashing.emptyRoot])
        out.append([MerkleHashing.emptyRoot] + path)
        if path.count >= 2, path[0] != path[1] {
            var swapped = path
            swapped.swapAt(0, 1)
            out.append(swapped)
        }
        return out
    }
}
