import FapiaoDomain
import Foundation
import Ingestion
import LMDB
import Synchronization
import Testing
@testable import Ledger
@testable import Projections

/// A projection for engine tests: one row per record, its value naming the version that wrote it.
struct VersionedProjection: Projection {
    var version: Int
    var name: String { "versioned" }
    var tables: [ProjectionTableSpec] { [ProjectionTableSpec("rows")] }

    func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        for item in batch.items {
            try store.put("rows", key: BigEndian.bytes(item.record.position), value: Array("v\(version) \(item.record.type)".utf8))
        }
    }

    static func rows(_ engine: ProjectionEngine) throws -> [String] {
        try dump(engine).tables["versioned.rows"]?.map { String(decoding: $0.value, as: UTF8.self) } ?? []
    }
}

/// Folded in log order, reading only issued invoices: rows keyed by position.
struct IssuedInOrder: Projection {
    var name: String { "issued_in_order" }
    var version: Int { 1 }
    var tables: [ProjectionTableSpec] { [ProjectionTableSpec("rows")] }
    var eventTypes: Set<EventType>? { [.invoiceIssued] }

    func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        for item in batch.items where item.record.type == EventType.invoiceIssued.rawValue {
            try store.put("rows", key: BigEndian.bytes(item.record.position), value: Array(item.record.stream.utf8))
        }
    }
}

/// Distinct invoices, one issued event each: after position `n` exactly `n` invoices exist,
/// which lets a reader check that what it sees is one consistent state.
func distinctInvoices(_ range: ClosedRange<Int>) -> [NewEvent] {
    range.map { number in
        let key = ListTests.key(number)
        return Build.event(key, Build.issued(key, at: "2025-01-02T10:00:00+08:00"), id: "invoice-\(number)", at: "2025-01-02T10:00:00+08:00")
    }
}

/// A flag one task sets and another watches.
final class Flag: Sendable {
    private let value: Atomic<Bool>
    init(_ value: Bool) { self.value = Atomic(value) }
    var isSet: Bool { value.load(ordering: .acquiring) }
    func clear() { value.store(false, ordering: .releasing) }
}

@Suite struct EngineTests {
    @Test func inlineAppendIsReadYourWrites() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            for (number, event) in distinctInvoices(1...20).enumerated() {
                let position = try await ledger.append([AppendEntry(event)]).positions[0]
                let row = try invoiceRow(engine, ListTests.key(number + 1))
                #expect(row?.lastPosition == position)
                #expect(row?.issuer.status == "issued")
                for projection in engine.projections { #expect(try engine.checkpoint(of: projection.name) == position) }
            }
        }
    }

    @Test func asyncAppendIsReadableAfterWaitingForTheCheckpoint() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .async) { ledger, engine in
            for (number, event) in distinctInvoices(1...20).enumerated() {
                let position = try await ledger.append([AppendEntry(event)]).positions[0]
                try await engine.waitForCheckpoint(InvoiceStateProjection.name, atLeast: position)
                let row = try invoiceRow(engine, ListTests.key(number + 1))
                #expect(row?.lastPosition == position)
            }
            try await waitUntilCaughtUp(engine)
            let status = try engine.status()
            #expect(status.allSatisfy { $0.lagEvents == 0 && $0.lagMilliseconds == 0 && !$0.rebuilding })
        }
    }

    /// Appends keep coming while a rebuild runs; readers keep reading. Every snapshot a reader
    /// sees is one generation at one checkpoint, and after the swap nothing is missing. The
    /// writer merges its index tail every 64 records, so the rebuild groups the log from a
    /// streams index that grows under it.
    @Test(arguments: [ProjectionEngine.Mode.inline, .async])
    func rebuildWhileAppendsContinue(mode: ProjectionEngine.Mode) async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: mode, options: LedgerOptions(indexMergeEventsMin: 64)) { ledger, engine in
            let early = distinctInvoices(1...600)
            for start in stride(from: 0, to: early.count, by: 100) {
                _ = try await ledger.append(early[start..<(start + 100)].map { AppendEntry($0) })
            }
            try await waitUntilCaughtUp(engine)
            let generation = try #require(try catalogEntry(engine, InvoiceStateProjection.name)).generation

            let rebuilding = Flag(true)
            let appender = Task {
                let late = distinctInvoices(601...900)
                for start in stride(from: 0, to: late.count, by: 5) {
                    _ = try await ledger.append(late[start..<(start + 5)].map { AppendEntry($0) })
                    await Task.yield()
                }
            }
            let reader = Task { () throws -> [(generation: Int, checkpoint: UInt64)] in
                var seen: [(generation: Int, checkpoint: UInt64)] = []
                var last = false
                repeat {
                    last = !rebuilding.isSet // one more read after the rebuild returned
                    seen.append(try engine.read { snapshot in
                        let entry = try #require(try CatalogEntry.read(InvoiceStateProjection.name, table: engine.catalog, in: snapshot.transaction))
                        let (states, checkpoint) = try #require(try snapshot.store(InvoiceStateProjection.name))
                        let (search, searchCheckpoint) = try #require(try snapshot.store(SearchProjection.name))
                        let rows = try snapshot.transaction.count(states.table("rows"))
                        let entries = try snapshot.transaction.count(search.table("entries"))
                        #expect(UInt64(rows) == checkpoint, "generation \(entry.generation): \(rows) invoices at checkpoint \(checkpoint)")
                        #expect(UInt64(entries) == searchCheckpoint)
                        return (entry.generation, checkpoint)
                    })
                    try await Task.sleep(for: .milliseconds(1))
                } while !last
                return seen
            }
            do { try await engine.rebuild([]) } catch { Issue.record("rebuild: \(error)") }
            rebuilding.clear()
            do { try await appender.value } catch { Issue.record("appender: \(error)") }
            var seen: [(generation: Int, checkpoint: UInt64)] = []
            do { seen = try await reader.value } catch { Issue.record("reader: \(error)") }

            try await waitUntilCaughtUp(engine)
            #expect(try ledger.headPosition() == 900)
            #expect(try catalogEntry(engine, InvoiceStateProjection.name)?.generation == generation + 1)
            #expect(try catalogEntry(engine, InvoiceStateProjection.name, building: true) == nil)
            #expect(try dump(engine).tables["invoice_state.rows"]?.count == 900)
            let retired = "p.invoice_state.\(generation).rows"
            #expect(try ledger.environment.tableNames().contains(retired), "kept, emptied, for readers still on it")
            for result in try await engine.verify([]) { #expect(result.identical, "\(result.name): \(result.firstDifference ?? "")") }
            #expect(try !ledger.environment.tableNames().contains(retired), "dropped by the next verify or rebuild")
            #expect(!seen.isEmpty)
            #expect(seen.map(\.generation) == seen.map(\.generation).sorted(), "readers never go back to an old generation")
            #expect(Set(seen.map(\.generation)) == [generation, generation + 1])
            #expect(seen.map(\.checkpoint) == seen.map(\.checkpoint).sorted(), "checkpoints never go back")
        }
    }

    @Test func statusShowsTheLagUntilCatchUp() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .async) { ledger, engine in
            try await append(ledger, distinctInvoices(1...3))
            try await waitUntilCaughtUp(engine)
        }
        // Appended while no engine runs.
        _ = try await withLedger(at: directory.ledgerPath) { ledger in
            try await append(ledger, distinctInvoices(4...8))
        }
        try await withLedger(at: directory.ledgerPath) { ledger in
            let engine = try ProjectionEngine(ledger: ledger, projections: BuiltInProjections.all, mode: .async)
            let waiting = try #require(try ledger.record(at: 4))
            let behind = try engine.status(nowMicros: waiting.recordedMicros + 2_500_000)
            #expect(behind.count == BuiltInProjections.all.count)
            for status in behind {
                #expect(status.checkpoint == 3)
                #expect(status.head == 8)
                #expect(status.lagEvents == 5, "\(status.name)")
                #expect(status.lagMilliseconds == 2_500)
                #expect(status.generation == 1)
                #expect(!status.rebuilding)
            }
            #expect(try invoiceRow(engine, ListTests.key(8)) == nil)

            try await engine.catchUp()
            for status in try engine.status(nowMicros: waiting.recordedMicros + 2_500_000) {
                #expect(status.checkpoint == 8)
                #expect(status.lagEvents == 0, "\(status.name)")
                #expect(status.lagMilliseconds == 0)
            }
            #expect(try invoiceRow(engine, ListTests.key(8))?.lastPosition == 8)
        }
    }

    /// An engine that was never started has no projections to catch up: `catchUp` must say
    /// so by returning, not spin.
    @Test func catchUpWithoutStartReturns() async throws {
        let directory = TemporaryDirectory()
        try await withLedger(at: directory.ledgerPath) { ledger in
            try await append(ledger, distinctInvoices(1...3))
            let engine = try ProjectionEngine(ledger: ledger, projections: BuiltInProjections.all, mode: .async)
            #expect(try engine.status().allSatisfy { $0.lagEvents == 3 && $0.generation == 0 })
            try await withTimeout(seconds: 10) { try await engine.catchUp() }
            try await engine.start()
            #expect(try engine.status().allSatisfy { $0.lagEvents == 0 && $0.generation == 1 })
        }
    }

    @Test func versionBumpRebuildsFromScratchOnStart() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline, projections: BuiltInProjections.all + [VersionedProjection(version: 1) as any Projection]) { ledger, engine in
            try await append(ledger, distinctInvoices(1...4))
            #expect(try VersionedProjection.rows(engine) == Array(repeating: "v1 fapiao.invoice.issued", count: 4))
        }
        _ = try await withLedger(at: directory.ledgerPath) { ledger in
            try await append(ledger, distinctInvoices(5...6))
        }
        try await withEngine(at: directory.ledgerPath, mode: .inline, projections: BuiltInProjections.all + [VersionedProjection(version: 2) as any Projection]) { ledger, engine in
            let entry = try #require(try catalogEntry(engine, "versioned"))
            #expect(entry.version == 2)
            #expect(entry.generation == 2)
            #expect(entry.checkpoint == 6)
            #expect(try VersionedProjection.rows(engine) == Array(repeating: "v2 fapiao.invoice.issued", count: 6))
            // Only the bumped projection was rebuilt (as `rebuild` does it); the old generation's
            // tables are emptied, kept for readers that may still hold them.
            #expect(try catalogEntry(engine, InvoiceStateProjection.name)?.generation == 1)
            let tables = try ledger.environment.tableNames()
            #expect(tables.contains("p.versioned.2.rows"))
            let old = try ledger.table(named: "p.versioned.1.rows", create: false)
            #expect(try ledger.read { txn in try txn.count(old) } == 0)

            try await append(ledger, distinctInvoices(7...7))
            #expect(try VersionedProjection.rows(engine).count == 7)
            for result in try await engine.verify([]) { #expect(result.identical, "\(result.name): \(result.firstDifference ?? "")") }
        }
    }

    /// A reader that does not rebuild (a read-only CLI) refuses rows stored in another version's
    /// format, saying how to upgrade them, instead of misreading them.
    @Test func rowsOfAnotherVersionAreRefusedToReaders() async throws {
        let directory = TemporaryDirectory()
        _ = try await withEngine(at: directory.ledgerPath, mode: .inline, projections: [VersionedProjection(version: 1) as any Projection]) { ledger, _ in
            try await append(ledger, distinctInvoices(1...2))
        }
        try await withLedger(at: directory.ledgerPath) { ledger in
            let engine = try ProjectionEngine(ledger: ledger, projections: [VersionedProjection(version: 2)], mode: .async)
            do {
                _ = try engine.read { try $0.store("versioned") }
                Issue.record("rows of version 1 were read as version 2")
            } catch let error as ProjectionError {
                guard case .storedVersion(name: "versioned", stored: 1, expected: 2) = error else { Issue.record("\(error)"); return }
                #expect(error.description.contains("fapiao projections catch-up"))
            }
        }
    }

    /// A rebuild reports the records it has folded, then the rows it writes at the end, ending
    /// with all of them written: here (invoices only, nothing written out before the end) every
    /// row of the new generation.
    @Test func rebuildReportsFoldingThenWriting() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            _ = try await append(ledger, distinctInvoices(1...30))
            let head = try ledger.headPosition()
            let reports = Mutex<[RebuildProgress]>([])
            try await engine.rebuild([]) { progress in reports.withLock { $0.append(progress) } }
            let seen = reports.withLock { $0 }
            let rows = try dump(engine).tables.values.reduce(0) { $0 + $1.count }
            let folding = seen.filter { $0.phase == .folding }
            let writing = seen.filter { $0.phase == .writing }
            #expect(!folding.isEmpty && !writing.isEmpty)
            #expect(seen.firstIndex { $0.phase == .writing }! > seen.lastIndex { $0.phase == .folding }!, "folding, then writing")
            #expect(folding.map(\.applied) == folding.map(\.applied).sorted() && folding.allSatisfy { $0.total == head })
            #expect(writing.map(\.rowsWritten) == writing.map(\.rowsWritten).sorted())
            #expect(writing.allSatisfy { $0.rowsWritten <= $0.rowsTotal && $0.applied == head })
            #expect(writing.last?.rowsWritten == rows && writing.last?.rowsTotal == rows, "\(rows) rows")
        }
    }

    /// A system's event on an invoice's stream (the contract forbids it, the ledger keeps it)
    /// sends the rebuild back to a scan of every record's header, once: the catalog notes it,
    /// and later rebuilds scan from the start (their progress never goes back).
    @Test func aSystemEventOnAnInvoiceStreamSendsRebuildsToTheScanForGood() async throws {
        let directory = TemporaryDirectory()
        let groupsOfThree = RebuildLimits(chunkEvents: 3)  // progress after every 3 records folded
        try await withEngine(at: directory.ledgerPath, mode: .inline, rebuildLimits: groupsOfThree, options: LedgerOptions(indexMergeEventsMin: 8)) { ledger, engine in
            _ = try await append(ledger, distinctInvoices(1...20))
            let time = "2025-01-02T11:00:00+08:00"
            let odd = NewEvent(
                stream: ListTests.key(7), type: EventType.accessGranted.rawValue, source: Build.source, id: "odd", time: time,
                occurredMicros: Literal.instant(time).micros, dataContentType: "application/json",
                data: Array(#"{"system":"beijing-finance","user":"li.na","scope":{"all":true}}"#.utf8))
            let position = try await ledger.append([AppendEntry(odd)]).positions[0]
            _ = try await append(ledger, distinctInvoices(21...30))
            let noted = { try engine.read { try $0.transaction.get(engine.catalog, key: ProjectionEngine.scanLayoutKey).map { String(decoding: $0, as: UTF8.self) } } }
            #expect(try noted() == nil)

            let first = Mutex<[UInt64]>([])
            try await engine.rebuild([]) { progress in if progress.phase == .folding { first.withLock { $0.append(progress.applied) } } }
            #expect(try noted() == "\(position)")
            let second = Mutex<[UInt64]>([])
            try await engine.rebuild([]) { progress in if progress.phase == .folding { second.withLock { $0.append(progress.applied) } } }
            let (before, after) = (first.withLock { $0 }, second.withLock { $0 })
            #expect(before != before.sorted(), "the first rebuild started again: \(before)")
            #expect(after == after.sorted(), "the second went straight to the scan: \(after)")
            for result in try await engine.verify([]) { #expect(result.identical, "\(result.name): \(result.firstDifference ?? "")") }
        }
    }

    /// A projection folded in log order that reads invoice events (the index path would hand
    /// every invoice stream to the folds by stream) rebuilds from a header scan, with no restart
    /// and nothing noted, and agrees with the one maintained inline.
    @Test func anInOrderFoldOfInvoiceEventsRebuildsFromAScan() async throws {
        let directory = TemporaryDirectory()
        let projections: [any Projection] = [InvoiceStateProjection(), IssuedInOrder()]
        try await withEngine(at: directory.ledgerPath, mode: .inline, projections: projections, options: LedgerOptions(indexMergeEventsMin: 8)) { ledger, engine in
            _ = try await append(ledger, distinctInvoices(1...30))
            try await engine.rebuild([])
            #expect(try engine.read { try $0.transaction.get(engine.catalog, key: ProjectionEngine.scanLayoutKey) } == nil)
            #expect(try dump(engine).tables["issued_in_order.rows"]?.count == 30)
            for result in try await engine.verify([]) { #expect(result.identical, "\(result.name): \(result.firstDifference ?? "")") }
        }
    }

    @Test func unknownProjectionNamesAreRefused() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { _, engine in
            await #expect(throws: ProjectionError.self) { try await engine.rebuild(["nonesuch"]) }
            await #expect(throws: ProjectionError.self) { _ = try await engine.verify(["nonesuch"]) }
        }
    }

    /// Imported files reach the projections like any append, flags included.
    @Test func importedFileIsProjected() async throws {
        let directory = TemporaryDirectory()
        try await withEngine(at: directory.ledgerPath, mode: .inline) { ledger, engine in
            let key = "24112000000015301234"
            var issued = Build.issued(key, at: "2025-01-01T00:30:00+08:00")
            if case .invoiceIssued(var invoice) = issued {
                invoice.totalWithTax = Literal.money("999.00") // totals that do not add up: recorded, and flagged
                issued = .invoiceIssued(invoice)
            }
            let envelopes = [
                CloudEventEnvelope(id: "r1", source: Build.source, subject: "system/trusting", time: Literal.instant("2025-01-01T08:00:00+08:00"), event: Build.registered("trusting", requiresReview: false)),
                CloudEventEnvelope(id: "i1", source: Build.source, subject: key, time: Literal.instant("2025-01-01T08:01:00+08:00"), event: issued),
                CloudEventEnvelope(id: "a1", source: Build.source, subject: key, time: Literal.instant("2025-01-01T08:02:00+08:00"), event: .receiptAccepted(ReceiptAccepted(system: "trusting"))),
            ]
            let file = directory.path + "/events.jsonl"
            let lines = envelopes.map { String(decoding: $0.encodedLine(), as: UTF8.self) }.joined(separator: "\n") + "\n"
            try lines.write(toFile: file, atomically: true, encoding: .utf8)
            let summary = try await Importer(ledger: ledger).importFile(atPath: file)
            #expect(summary.new == 3)
            #expect(summary.flagged == 1)

            let state = try #require(try invoiceRow(engine, key))
            #expect(state.flags.contains(RuleCode.totalWithTaxMismatch.rawValue))
            #expect(state.invoice?.issueDate == "2025-01-01")
            #expect(try list(engine, InvoiceListCriteria(system: "trusting")).items.map(\.key) == [key])
        }
    }
}
