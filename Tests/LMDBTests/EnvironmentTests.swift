import Foundation
import Testing
import LMDB

@Suite struct EnvironmentTests {
    private func open(_ dir: borrowing TemporaryDirectory, mapSizeBytes: Int = 16 << 20) throws -> Environment {
        try Environment(path: dir.path, options: Environment.Options(mapSizeBytes: mapSizeBytes, tablesMax: 8, readersMax: 126))
    }

    @Test func putGetDeleteCount() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("t", flags: [], create: true)
        try env.write { txn throws in
            try txn.put(table, key: Array("b".utf8), value: [2], flags: [])
            try txn.put(table, key: Array("a".utf8), value: [1], flags: [])
            try txn.put(table, key: Array("c".utf8), value: [3, 3, 3], flags: [])
        }
        try env.read { txn throws in
            #expect(try txn.count(table) == 3)
            #expect(try txn.get(table, key: Array("a".utf8)) == [1])
            #expect(try txn.get(table, key: Array("c".utf8)) == [3, 3, 3])
            #expect(try txn.get(table, key: Array("z".utf8)) == nil)
        }
        try env.write { txn throws in
            // A plain put overwrites; noOverwrite refuses.
            try txn.put(table, key: Array("a".utf8), value: [9], flags: [])
            #expect(throws: LMDBError.keyExists) {
                try txn.put(table, key: Array("b".utf8), value: [7], flags: [.noOverwrite])
            }
            #expect(try txn.delete(table, key: Array("b".utf8)) == true)
            #expect(try txn.delete(table, key: Array("b".utf8)) == false)
        }
        try env.read { txn throws in
            #expect(try txn.count(table) == 2)
            #expect(try txn.get(table, key: Array("a".utf8)) == [9])
            #expect(try txn.get(table, key: Array("b".utf8)) == nil)
        }
        try env.write { txn throws in try txn.clear(table) }
        #expect(try env.read { txn throws in try txn.count(table) } == 0)
    }

    @Test func cursorsWalkAndSeek() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("t", flags: [], create: true)
        try env.write { txn throws in
            for key in ["a", "c", "e"] { try txn.put(table, key: Array(key.utf8), value: Array((key + key).utf8), flags: []) }
        }
        func text(_ entry: Cursor.Entry?) -> String? { entry.map { String(decoding: $0.key, as: UTF8.self) } }
        try env.read { txn throws in
            try txn.withCursor(table) { cursor throws in
                #expect(text(try cursor.first()) == "a")
                #expect(text(try cursor.next()) == "c")
                #expect(text(try cursor.next()) == "e")
                #expect(try cursor.next() == nil)
                #expect(text(try cursor.last()) == "e")
                #expect(text(try cursor.previous()) == "c")
                #expect(text(try cursor.previous()) == "a")
                #expect(try cursor.previous() == nil)
                #expect(text(try cursor.seek(atLeast: Array("b".utf8))) == "c")
                #expect(text(try cursor.seek(atLeast: Array("c".utf8))) == "c")
                #expect(try cursor.seek(atLeast: Array("f".utf8)) == nil)
                #expect(try cursor.seek(exactly: Array("b".utf8)) == nil)
                let exact = try #require(try cursor.seek(exactly: Array("e".utf8)))
                #expect(Array(exact.value) == Array("ee".utf8))
                #expect(text(try cursor.previous()) == "c")
            }
        }
    }

    @Test func cursorsInDuplicateTables() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("dups", flags: [.duplicateSort, .duplicateFixed], create: true)
        try env.write { txn throws in
            for value in [1, 2, 3] as [UInt64] { try txn.put(table, key: Array("k".utf8), value: .key(value), flags: [.appendDuplicate]) }
            try txn.put(table, key: Array("m".utf8), value: .key(9), flags: [])
            // The same pair again is refused when asked to.
            #expect(throws: LMDBError.keyExists) {
                try txn.put(table, key: Array("k".utf8), value: .key(2), flags: [.noDuplicateData])
            }
        }
        try env.read { txn throws in
            #expect(try txn.count(table) == 4)
            try txn.withCursor(table) { cursor throws in
                let first = try #require(try cursor.seek(exactly: Array("k".utf8)))
                #expect(Array(first.value) == .key(1))
                #expect(try cursor.duplicateCount() == 3)
                #expect(try cursor.nextDuplicate().map { Array($0.value) } == .key(2))
                #expect(try cursor.nextDuplicate().map { Array($0.value) } == .key(3))
                #expect(try cursor.nextDuplicate() == nil)
                let next = try #require(try cursor.nextKey())
                #expect(Array(next.key) == Array("m".utf8))
                #expect(try cursor.duplicateCount() == 1)
                #expect(try cursor.nextKey() == nil)
            }
        }
        // Deleting the key deletes every value of it.
        try env.write { txn throws in #expect(try txn.delete(table, key: Array("k".utf8))) }
        #expect(try env.read { txn throws in try txn.count(table) } == 1)
    }

    @Test func aCursorPutsInOrderAndDeletesWhereItStands() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("t", flags: [], create: true)
        try env.write { txn throws in
            try txn.withCursor(table) { cursor throws in
                for key in ["a", "b", "c", "d"] {
                    try Array(key.utf8).withUnsafeBytes { k in try [UInt8(1)].withUnsafeBytes { try cursor.put(key: k, value: $0, flags: [.append]) } }
                }
                #expect(throws: LMDBError.keyExists) {
                    try Array("b".utf8).withUnsafeBytes { k in try [UInt8(1)].withUnsafeBytes { try cursor.put(key: k, value: $0, flags: [.append]) } }
                }
                #expect(try cursor.seek(exactly: Array("b".utf8)) != nil)
                try cursor.deleteCurrent()
                #expect(try cursor.seek(exactly: Array("d".utf8)) != nil)
                try cursor.deleteCurrent()
            }
        }
        try env.read { txn throws in
            var keys: [String] = []
            try txn.withCursor(table) { cursor throws in
                var entry = try cursor.first()
                while let current = entry {
                    keys.append(String(decoding: current.key, as: UTF8.self))
                    entry = try cursor.next()
                }
            }
            #expect(keys == ["a", "c"])
        }
    }

    @Test func appendRefusesAKeyThatDoesNotSortLast() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("log", flags: [], create: true)
        try env.write { txn throws in
            try txn.put(table, key: .key(1), value: [1], flags: [.append])
            try txn.put(table, key: .key(2), value: [2], flags: [.append])
        }
        for key: UInt64 in [1, 2] {
            do {
                try env.write { txn throws in
                    try txn.put(table, key: .key(3), value: [3], flags: [.append])
                    try txn.put(table, key: .key(key), value: [0], flags: [.append])
                }
                Issue.record("append of key \(key) after key 3 was accepted")
            } catch LMDBError.keyExists {
                // Expected: LMDB refuses, and the whole transaction (key 3 too) is gone.
            }
        }
        try env.read { txn throws in
            #expect(try txn.count(table) == 2)
            #expect(try txn.get(table, key: .key(3)) == nil)
            #expect(try txn.get(table, key: .key(2)) == [2])
        }
    }

    @Test func aThrowingWriteLeavesNothing() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("t", flags: [], create: true)
        #expect(throws: Boom()) {
            try env.write { txn throws in
                for n: UInt64 in 1...100 { try txn.put(table, key: .key(n), value: [UInt8](repeating: 7, count: 100), flags: [.append]) }
                throw Boom()
            }
        }
        #expect(try env.read { txn throws in try txn.count(table) } == 0)
        // The environment still takes writes afterwards.
        try env.write { txn throws in try txn.put(table, key: .key(1), value: [1], flags: []) }
        #expect(try env.read { txn throws in try txn.count(table) } == 1)
    }

    @Test func aReadSnapshotDoesNotSeeLaterWrites() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("t", flags: [], create: true)
        try env.write { txn throws in try txn.put(table, key: Array("x".utf8), value: [1], flags: []) }
        try env.read { snapshot throws in
            #expect(try snapshot.get(table, key: Array("x".utf8)) == [1])
            try env.write { txn throws in
                try txn.put(table, key: Array("x".utf8), value: [2], flags: [])
                try txn.put(table, key: Array("y".utf8), value: [2], flags: [])
            }
            // Committed meanwhile, but this snapshot began before.
            #expect(try snapshot.get(table, key: Array("x".utf8)) == [1])
            #expect(try snapshot.get(table, key: Array("y".utf8)) == nil)
            #expect(try snapshot.count(table) == 1)
        }
        try env.read { txn throws in
            #expect(try txn.get(table, key: Array("x".utf8)) == [2])
            #expect(try txn.count(table) == 2)
        }
    }

    @Test func mapFullThenReopenLarger() throws {
        let dir = TemporaryDirectory()
        let value = [UInt8](repeating: 0xAB, count: 1000)
        var committed: UInt64 = 0
        do {
            let env = try open(dir, mapSizeBytes: 64 << 10)
            let table = try env.openTable("t", flags: [], create: true)
            var sawMapFull = false
            for n: UInt64 in 1...10_000 {
                do {
                    try env.write { txn throws in try txn.put(table, key: .key(n), value: value, flags: [.append]) }
                    committed = n
                } catch LMDBError.mapFull {
                    sawMapFull = true
                    break
                }
            }
            #expect(sawMapFull)
            #expect(committed > 0)
            // Still full: the failed transaction left nothing behind, the next one fails the same way.
            #expect(throws: LMDBError.mapFull) {
                try env.write { txn throws in try txn.put(table, key: .key(committed + 1), value: value, flags: [.append]) }
            }
            #expect(try env.read { txn throws in try txn.count(table) } == Int(committed))
        }
        // `env` is gone (no transaction outlives its closure): the directory may be opened again.
        let env = try open(dir, mapSizeBytes: 1 << 20)
        #expect(env.usage().mapSizeBytes == 1 << 20)
        let table = try env.openTable("t", flags: [], create: false)
        try env.read { txn throws in
            #expect(try txn.count(table) == Int(committed))
            for n in 1...committed { #expect(try txn.get(table, key: .key(n)) == value) }
        }
        try env.write { txn throws in
            for n in (committed + 1)...(committed + 50) { try txn.put(table, key: .key(n), value: value, flags: [.append]) }
        }
        #expect(try env.read { txn throws in try txn.count(table) } == Int(committed) + 50)
    }

    @Test func pooledReadersServeManyConcurrentTasks() async throws {
        let dir = TemporaryDirectory()
        let env = try open(dir)
        let table = try env.openTable("t", flags: [], create: true)
        try env.write { txn throws in
            for n: UInt64 in 1...200 { try txn.put(table, key: .key(n), value: .key(n * 7), flags: [.append]) }
            try txn.put(table, key: Array("x".utf8), value: .key(0), flags: [])
            try txn.put(table, key: Array("y".utf8), value: .key(0), flags: [])
        }
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            // A writer keeps x == y in every transaction while the readers run.
            group.addTask {
                for round: UInt64 in 1...200 {
                    try env.write { txn throws in
                        try txn.put(table, key: Array("x".utf8), value: .key(round), flags: [])
                        try txn.put(table, key: Array("y".utf8), value: .key(round), flags: [])
                    }
                }
                return 0
            }
            for task in 0..<64 {
                group.addTask {
                    var mismatches = 0
                    for read in 0..<300 {
                        let n = UInt64((task * 31 + read) % 200 + 1)
                        let ok = try env.read { txn throws in
                            try txn.get(table, key: .key(n)) == .key(n * 7)
                                && txn.get(table, key: Array("x".utf8)) == txn.get(table, key: Array("y".utf8))
                        }
                        if !ok { mismatches += 1 }
                    }
                    return mismatches
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        let usage = env.usage()
        #expect(usage.readersUsed <= usage.readersMax)
        #expect(try env.read { txn throws in try txn.get(table, key: Array("x".utf8)) } == .key(200))
    }

    /// Far more reads than reader slots: each read gives its slot back (to the pool), so none
    /// runs out and the slots in use stay few.
    @Test func readsReturnTheirReaderSlots() throws {
        let dir = TemporaryDirectory()
        let env = try Environment(path: dir.path, options: Environment.Options(mapSizeBytes: 1 << 20, readersMax: 8))
        let table = try env.openTable("t", flags: [], create: true)
        try env.write { txn throws in try txn.put(table, key: .key(1), value: [1], flags: []) }
        for _ in 0..<10_000 {
            #expect(try env.read { txn throws in try txn.get(table, key: .key(1)) } == [1])
        }
        #expect(env.usage().readersUsed <= 2)
    }

    @Test func usageIsSane() throws {
        let dir = TemporaryDirectory()
        let env = try open(dir, mapSizeBytes: 8 << 20)
        let table = try env.openTable("t", flags: [], create: true)
        let before = env.usage()
        try env.write { txn throws in
            for n: UInt64 in 1...500 { try txn.put(table, key: .key(n), value: [UInt8](repeating: 1, count: 500), flags: [.append]) }
        }
        let after = env.usage()
        #expect(after.mapSizeBytes == 8 << 20)
        #expect(after.pageSizeBytes >= 4096 && after.pageSizeBytes.nonzeroBitCount == 1)
        #expect(after.usedBytes % after.pageSizeBytes == 0)
        #expect(after.usedBytes > before.usedBytes)
        // 500 values of 500 bytes take at least that much, and the map holds it all.
        #expect(after.usedBytes >= 250_000)
        #expect(after.usedBytes <= after.mapSizeBytes)
        #expect(after.readersMax >= 126)
        #expect(after.readersUsed >= 0 && after.readersUsed <= after.readersMax)
        #expect(Environment.libraryVersion.hasPrefix("LMDB 0.9"))
    }

    @Test func openingAMissingDirectoryFails() {
        let dir = TemporaryDirectory()
        #expect(throws: LMDBError.noEntry) {
            _ = try Environment(path: dir.path + "/absent", options: Environment.Options(mapSizeBytes: 1 << 20))
        }
    }

    @Test func hotCopyIsAReadableEnvironment() throws {
        let dir = TemporaryDirectory()
        let copyPath = dir.path + "/copy"
        try FileManager.default.createDirectory(atPath: copyPath, withIntermediateDirectories: false)
        let sourcePath = dir.path + "/source"
        try FileManager.default.createDirectory(atPath: sourcePath, withIntermediateDirectories: false)
        do {
            let env = try Environment(path: sourcePath, options: Environment.Options(mapSizeBytes: 4 << 20))
            let table = try env.openTable("t", flags: [], create: true)
            try env.write { txn throws in for n: UInt64 in 1...10 { try txn.put(table, key: .key(n), value: [UInt8(n)], flags: [.append]) } }
            try env.copy(to: copyPath)
        }
        let copy = try Environment(path: copyPath, options: Environment.Options(mapSizeBytes: 4 << 20, readOnly: true))
        let table = try copy.openTable("t", create: false)
        #expect(try copy.read { txn throws in try txn.count(table) } == 10)
        #expect(throws: LMDBError.notFound) { _ = try copy.openTable("absent", create: false) }
    }
}
