import Foundation
import LMDB
import PropertyBased
import Testing
@testable import Ledger
@testable import Projections

/// A rebuild folds into a `RowBuffer` in front of its tables: through the store, it must behave
/// exactly like the table itself, before and after it has written rows out.
@Suite struct RowBufferTests {
    @Test func bufferedStoreBehavesLikeThePlainTable() async throws {
        await propertyCheck(count: 60, input: Gen.int(in: 0...Int.max).array(of: 1...150)) { codes in
            do {
                try await check(codes)
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    /// The write-out's sort against a plain one: keys that share 20 to 70 bytes before they differ
    /// (the sort goes 24 bytes at a time), hold zero bytes, are prefixes of each other, and are
    /// changed several times.
    @Test func lastChangePerKeyAgreesWithAPlainSort() async {
        await propertyCheck(count: 200, input: Gen.int(in: 0...Int.max).array(of: 0...300)) { codes in
            let shared = Array(repeating: UInt8(0x61), count: 70)
            let alphabet: [UInt8] = [0, 1, 0x61, 0xff]
            var log = ChangeLog()
            var keys: [[UInt8]] = []
            for code in codes {
                let prefix = [0, 20, 23, 24, 25, 47, 48, 49, 70][code % 9]
                var key = Array(shared.prefix(prefix))
                for shift in 0..<(code / 9 % 4) { key.append(alphabet[(code >> (8 + 2 * shift)) & 3]) }
                keys.append(key)
                log.append(key, code % 5 == 0 ? .deleted : .row([UInt8(code & 0xff)]))
            }
            var last: [[UInt8]: Int] = [:]
            for (index, key) in keys.enumerated() { last[key] = index }
            let expected = last.sorted { RowKey.compare($0.key, $1.key) < 0 }.map(\.value)
            #expect(log.lastChangePerKey() == expected)
        }
    }

    /// A log appended to another keeps its changes in segments of their own: the last change of a
    /// key wins across segments, and keys and values are read from the right one.
    @Test func logsJoinedInSegments() {
        var first = ChangeLog()
        first.append(Array("b".utf8), .row([1]))
        first.append(Array("a".utf8), .row([2]))
        var second = ChangeLog()
        second.append(Array("a".utf8), .row([3, 3]))
        second.append(Array("c".utf8), .deleted)
        var third = ChangeLog()
        third.append(Array("b".utf8), .deleted)
        first.append(contentsOf: second)
        first.append(contentsOf: ChangeLog())
        first.append(contentsOf: third)
        #expect(first.count == 5)
        #expect(first.segments.count == 3)
        let order = first.lastChangePerKey()
        #expect(order.map { first.key($0) } == [Array("a".utf8), Array("b".utf8), Array("c".utf8)])
        #expect(order == [1 << 32, 2 << 32, 1 << 32 | 1])
        guard case .row(let value) = first.entry(order[0]) else { Issue.record("a is not a row"); return }
        #expect(value == [3, 3])
        let located = first.lastChangesPerKey()
        #expect(located.map(\.segment) == [1, 2, 1])
        #expect(located.map(\.change.valueCount) == [2, -1, -1])
    }

    /// Keys from a small alphabet (so they collide, share prefixes and sort around each other),
    /// values that say when they were written.
    private static func key(_ code: Int) -> [UInt8] {
        let alphabet: [UInt8] = [0, 1, 0x61, 0xff]
        var key = [UInt8(0x30 + code % 3)]
        for shift in 0..<(code / 3 % 4) { key.append(alphabet[(code >> (4 + 2 * shift)) & 3]) }
        return key
    }

    private func check(_ codes: [Int]) async throws {
        let directory = TemporaryDirectory("rowbuffer")
        try await withLedger(at: directory.ledgerPath) { ledger in
            let table = try ledger.table(named: "rows", create: true)
            let buffer = RowBuffer(tables: ["rows"])
            var model: [[UInt8]: [UInt8]] = [:]
            func writeOut() async throws {
                let runs = buffer.drain()
                try await ledger.performWrite { txn in
                    for run in runs { try run.write(0..<run.count, to: table, in: txn) }
                }
            }
            for (step, code) in codes.enumerated() {
                let key = Self.key(code >> 3)
                try ledger.read { txn in
                    let store = ProjectionStore(transaction: txn, handles: ["rows": table], buffer: buffer)
                    switch code % 6 {
                    case 0, 1:
                        let value = Array("\(step)".utf8)
                        try store.put("rows", key: key, value: value)
                        model[key] = value
                    case 2:
                        try store.delete("rows", key: key)
                        model[key] = nil
                    case 3:
                        #expect(try store.get("rows", key: key) == model[key], "step \(step): get \(key)")
                    case 4:
                        let prefix = Array(key.prefix(2))
                        let expected = model.keys.filter { $0.starts(with: prefix) }.sorted { $0.lexicographicallyPrecedes($1) }
                        #expect(try store.keys("rows", withPrefix: prefix) == expected, "step \(step): keys with prefix \(prefix)")
                    default:
                        break
                    }
                }
                if code % 6 == 5 { try await writeOut() }
            }
            try await writeOut()
            let stored = try ledger.read { txn in
                try txn.withCursor(table) { cursor in
                    var rows: [([UInt8], [UInt8])] = []
                    var entry = try cursor.first()
                    while let current = entry {
                        rows.append((Array(current.key), Array(current.value)))
                        entry = try cursor.next()
                    }
                    return rows
                }
            }
            let expected = model.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            #expect(stored.map(\.0) == expected.map(\.key))
            #expect(stored.map(\.1) == expected.map(\.value))
        }
    }

    @Test func lastChangeOfEachKeyWinsInKeyOrder() {
        var log = ChangeLog()
        let long = Array("a-key-longer-than-sixteen-bytes".utf8)
        log.append(long + [2], .row([1]))
        log.append(long, .row([2]))
        log.append(long + [2], .deleted)
        log.append(Array("a".utf8), .row([3]))
        log.append(long, .row([4]))
        log.append([], .row([5]))
        let order = log.lastChangePerKey()
        #expect(order.map { log.key($0) } == [[], Array("a".utf8), long, long + [2]])
        #expect(order == [5, 3, 4, 2])
    }
}
