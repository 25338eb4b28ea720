import Foundation
import Testing
@testable import Projections

/// `StreamLayout`: the log grouped by stream, as a rebuild folds it.
@Suite struct StreamLayoutTests {
    /// Random streams (some names prefixes of others, one empty) over random parts, against a
    /// plain grouping: streams in LMDB's key order, each with its positions in log order.
    @Test func joiningPartsGroupsByStreamInKeyOrder() {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<50 {
            let names: [[UInt8]] = (0..<Int.random(in: 1...300, using: &rng)).map { i in
                switch i % 5 {
                case 0: Array("2411\(Int.random(in: 0...99, using: &rng))".utf8)
                case 1: Array("2411".utf8)
                case 2: []
                case 3: Array("system/\(i)".utf8)
                default: (0..<Int.random(in: 1...24, using: &rng)).map { _ in UInt8.random(in: 1...255, using: &rng) }
                }
            }
            let records = Int.random(in: 0...3_000, using: &rng)
            let streams = (0..<records).map { _ in names[Int.random(in: 0..<names.count, using: &rng)] }
            // Cut the log into parts, as the scan does.
            var cuts = (0..<Int.random(in: 0...4, using: &rng)).map { _ in Int.random(in: 0...records, using: &rng) }
            cuts = [0] + cuts.sorted() + [records]
            var parts: [PartialStreamLayout] = []
            for (start, end) in zip(cuts, cuts.dropFirst()) {
                var part = PartialStreamLayout()
                for index in start..<end { streams[index].withUnsafeBytes { part.add(stream: $0, position: UInt64(index + 1)) } }
                parts.append(part)
            }
            let layout = StreamLayout(joining: parts, inOrderPositions: nil)

            var grouped: [[UInt8]: [UInt64]] = [:]
            for (index, stream) in streams.enumerated() { grouped[stream, default: []].append(UInt64(index + 1)) }
            let expected = grouped.keys.sorted { RowKey.compare($0, $1) < 0 }.map { grouped[$0]! }
            #expect(layout.streamCount == expected.count, "round \(round)")
            #expect(layout.events == records)
            #expect((0..<layout.streamCount).map { Array(layout.positions(of: $0)) } == expected, "round \(round)")
        }
    }

    /// Parts read from the streams index (streams interned in key order, each in one part, the
    /// parts in key order) join without hashing or sorting, as the general join would.
    @Test func keyOrderedPartsJoinAsAnyParts() {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<30 {
            var names = Set<[UInt8]>()
            for _ in 0..<Int.random(in: 1...200, using: &rng) {
                names.insert((0..<Int.random(in: 1...6, using: &rng)).map { _ in UInt8.random(in: 0x2D...0x39, using: &rng) })
            }
            let sorted = names.sorted { RowKey.compare($0, $1) < 0 }
            var cuts = (0..<Int.random(in: 0...3, using: &rng)).map { _ in Int.random(in: 0...sorted.count, using: &rng) }
            cuts = [0] + cuts.sorted() + [sorted.count]
            var parts: [PartialStreamLayout] = []
            var position: UInt64 = 0
            for (start, end) in zip(cuts, cuts.dropFirst()) {
                var part = PartialStreamLayout()
                for name in sorted[start..<end] {
                    let id = name.withUnsafeBytes { part.names.intern($0) }
                    for _ in 0..<Int.random(in: 1...4, using: &rng) {
                        position += UInt64.random(in: 1...3, using: &rng)
                        part.add(stream: id, position: position)
                    }
                }
                parts.append(part)
            }
            let ordered = StreamLayout(keyOrderedParts: parts, inOrderPositions: [7])
            let joined = StreamLayout(joining: parts, inOrderPositions: [7])
            #expect(ordered.streamCount == joined.streamCount, "round \(round)")
            #expect(ordered.offsets == joined.offsets, "round \(round)")
            #expect(ordered.positions == joined.positions, "round \(round)")
            #expect(ordered.inOrderPositions == [7])
        }
    }

    /// Groups hold whole streams, at most the records asked (a longer stream alone), and cover
    /// every stream once, in order.
    @Test func groupsHoldWholeStreamsUpToTheirSize() {
        var part = PartialStreamLayout()
        let counts = [3, 1, 1, 7, 2, 2, 2, 1, 4]
        var position: UInt64 = 0
        for (stream, count) in counts.enumerated() {
            let id = Array("s\(stream)".utf8).withUnsafeBytes { part.names.intern($0) }
            for _ in 0..<count {
                position += 1
                part.add(stream: id, position: position)
            }
        }
        let layout = StreamLayout(keyOrderedParts: [part], inOrderPositions: nil)
        #expect(layout.groups(ofAtMost: 4) == [0, 2, 3, 4, 6, 8, 9])
        #expect(layout.groups(ofAtMost: 100) == [0, 9])
        #expect(layout.groups(ofAtMost: 1) == Array(0...9))
        #expect(StreamLayout().groups(ofAtMost: 4) == [0])
    }
}
