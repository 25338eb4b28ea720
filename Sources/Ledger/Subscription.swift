import Foundation

/// Which records a subscriber wants.
public struct RecordFilter: Sendable, Equatable {
    /// Only types starting with this (e.g. `fapiao.delivery.`).
    public var typePrefix: String?
    /// Only this stream (subject).
    public var stream: String?

    public init(typePrefix: String? = nil, stream: String? = nil) {
        self.typePrefix = typePrefix
        self.stream = stream
    }

    public func matches(_ record: Record) -> Bool {
        if let typePrefix, !record.type.hasPrefix(typePrefix) { return false }
        if let stream, record.stream != stream { return false }
        return true
    }
}

public enum SubscriptionError: Error, Equatable, CustomStringConvertible {
    /// Once live, the subscriber fell more than `lagEventsMax` behind the head. Resume from
    /// `lastDelivered + 1`.
    case fellBehind(lastDelivered: UInt64, head: UInt64)

    public var description: String {
        switch self {
        case let .fellBehind(last, head):
            "the subscriber fell \(head - last) events behind the head (\(head)); resume from position \(last + 1)"
        }
    }
}

/// The log from a position on, as an `AsyncSequence`: history first, read in bounded chunks,
/// then live records as they commit, with no gap and no duplicate. It holds no read
/// transaction while it waits, and never slows the writer: it pulls from the log at its own
/// pace. Ends when the ledger closes.
public struct LogSubscription: AsyncSequence, Sendable {
    public typealias Element = Record

    let ledger: Ledger
    let start: UInt64
    let filter: RecordFilter
    let chunkRecords: Int
    let lagEventsMax: UInt64?
    /// A read-only ledger gets no commit notifications (the writer is another process): poll.
    let pollMilliseconds: UInt64

    public func makeAsyncIterator() -> Iterator {
        Iterator(subscription: self, updates: ledger.isWritable ? ledger.headUpdates().makeAsyncIterator() : nil)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let subscription: LogSubscription
        var updates: AsyncStream<UInt64>.Iterator?
        var buffer: [Record] = []
        var index = 0
        var nextPosition: UInt64
        public private(set) var lastDelivered: UInt64
        /// Lag counts only once the subscriber has been live: catching up on history is chosen.
        var hasBeenLive = false

        init(subscription: LogSubscription, updates: AsyncStream<UInt64>.Iterator?) {
            self.subscription = subscription
            self.updates = updates
            nextPosition = Swift.max(subscription.start, 1)
            lastDelivered = nextPosition - 1
        }

        public mutating func next() async throws -> Record? {
            while true {
                try Task.checkCancellation()
                while index < buffer.count {
                    let record = buffer[index]
                    index += 1
                    lastDelivered = record.position
                    if subscription.filter.matches(record) { return record }
                }
                let chunk = try subscription.ledger.records(from: nextPosition, limit: subscription.chunkRecords)
                if let last = chunk.last {
                    buffer = chunk
                    index = 0
                    nextPosition = last.position + 1
                    if hasBeenLive, let lagMax = subscription.lagEventsMax {
                        let head = try subscription.ledger.headPosition()
                        if head > lastDelivered + lagMax { throw SubscriptionError.fellBehind(lastDelivered: lastDelivered, head: head) }
                    }
                    continue
                }
                hasBeenLive = true
                if updates != nil {
                    guard await updates!.next() != nil else { return nil }
                } else {
                    try await Task.sleep(nanoseconds: subscription.pollMilliseconds * 1_000_000)
                }
            }
        }
    }
}

extension Ledger {
    /// Subscribes to the log from `position` (1 = from the beginning; `head + 1` = live only).
    public func subscribe(
        from position: UInt64, filter: RecordFilter = RecordFilter(), chunkRecords: Int = 1_000,
        lagEventsMax: UInt64? = nil, pollMilliseconds: UInt64 = 200
    ) -> LogSubscription {
        LogSubscription(
            ledger: self, start: position, filter: filter, chunkRecords: min(max(chunkRecords, 1), options.readEventsMax),
            lagEventsMax: lagEventsMax, pollMilliseconds: pollMilliseconds)
    }
}
