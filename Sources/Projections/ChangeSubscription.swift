import FapiaoDomain
import Foundation
import Ledger

/// One record's effect on a projection: which rows it changed.
public struct ProjectionChange: Codable, Sendable, Equatable {
    public var projection: String
    public var position: UInt64
    public var type: String
    /// Row keys (an invoice key, a system, `system/user`).
    public var keys: [String]
}

/// A projection's changes from a position on, as an `AsyncSequence`: catch-up from history,
/// then live as the projection's checkpoint advances (never ahead of it: a change is delivered
/// only once its rows are readable). Records that change no row of the projection are skipped.
public struct ProjectionChanges: AsyncSequence, Sendable {
    public typealias Element = ProjectionChange

    let engine: ProjectionEngine
    let projection: any Projection
    let start: UInt64
    let chunkRecords: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(changes: self, updates: engine.ledger.isWritable ? engine.ledger.headUpdates().makeAsyncIterator() : nil)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let changes: ProjectionChanges
        var updates: AsyncStream<UInt64>.Iterator?
        var pending: [ProjectionChange] = []
        var nextPosition: UInt64

        init(changes: ProjectionChanges, updates: AsyncStream<UInt64>.Iterator?) {
            self.changes = changes
            self.updates = updates
            nextPosition = Swift.max(changes.start, 1)
        }

        public mutating func next() async throws -> ProjectionChange? {
            while true {
                try Task.checkCancellation()
                if !pending.isEmpty { return pending.removeFirst() }
                let checkpoint = try changes.engine.checkpoint(of: changes.projection.name)
                if checkpoint >= nextPosition {
                    let limit = Int(Swift.min(UInt64(changes.chunkRecords), checkpoint - nextPosition + 1))
                    let records = try changes.engine.ledger.records(from: nextPosition, limit: limit)
                    guard let last = records.last else { continue }
                    nextPosition = last.position + 1
                    for item in DecodedBatch(records: records).items {
                        let keys = changes.projection.changedKeys(item)
                        if !keys.isEmpty {
                            pending.append(ProjectionChange(projection: changes.projection.name, position: item.record.position, type: item.record.type, keys: keys))
                        }
                    }
                    continue
                }
                // Caught up with the checkpoint: wait for a commit, then give an async
                // projection a moment to apply it.
                if updates != nil, try changes.engine.ledger.headPosition() < nextPosition {
                    guard await updates!.next() != nil else { return nil }
                } else {
                    try await Task.sleep(nanoseconds: 5_000_000)
                }
            }
        }
    }
}

extension ProjectionEngine {
    /// Subscribes to `name`'s changes from `position` (1 = from the beginning).
    public func changes(of name: String, from position: UInt64, chunkRecords: Int = 1_000) throws -> ProjectionChanges {
        guard let projection = projection(named: name) else {
            throw ProjectionError.unknown(name: name, known: projections.map(\.name))
        }
        return ProjectionChanges(engine: self, projection: projection, start: position, chunkRecords: chunkRecords)
    }
}
