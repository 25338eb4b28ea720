import Synchronization

/// An append that was queued and may not have committed yet. Queue several, then await them
/// in order: the writer keeps queue order, and the caller keeps parsing while it commits.
public final class PendingAppend: Sendable {
    private enum State {
        case waiting(CheckedContinuation<Result<AppendResult, LedgerError>, Never>?)
        case done(Result<AppendResult, LedgerError>)
    }

    private let state = Mutex<State>(.waiting(nil))

    fileprivate init() {}

    fileprivate func fulfil(_ result: Result<AppendResult, LedgerError>) {
        let waiter: CheckedContinuation<Result<AppendResult, LedgerError>, Never>? = state.withLock { state in
            defer { state = .done(result) }
            if case let .waiting(continuation) = state { return continuation }
            return nil
        }
        waiter?.resume(returning: result)
    }

    /// Waits for the commit (or refusal) of this append.
    public func result() async throws(LedgerError) -> AppendResult {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<AppendResult, LedgerError>, Never>) in
            let ready: Result<AppendResult, LedgerError>? = state.withLock { state in
                if case let .done(result) = state { return result }
                state = .waiting(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }
}

/// Whether an event is already in the ledger under its `(source, id)`.
public enum Presence: Sendable, Equatable {
    case absent
    /// Present with the same content: appending it again is a no-op.
    case present(position: UInt64)
    /// Present with different content: appending it would be refused.
    case conflicting(position: UInt64)
}

extension Ledger {
    /// Queues an append and returns at once; `await pending.result()` later. Requests queued
    /// one after another from one task commit in that order.
    public func enqueue(_ entries: [AppendEntry]) throws(LedgerError) -> PendingAppend {
        guard let writer else { throw .readOnly }
        let pending = PendingAppend()
        writer.submit(entries) { pending.fulfil($0) }
        return pending
    }

    /// Looks every event up by `(source, id)` in one snapshot.
    public func presence(of events: [NewEvent]) throws -> [Presence] {
        try readIndexed { snapshot in
            try events.map { event in
                guard let position = try snapshot.position(source: event.source, id: event.id) else { return .absent }
                guard let bytes = try snapshot.txn.recordBytes(at: position, tables: tables) else {
                    throw LedgerError.corruptRecord(position: position, reason: "the idempotency index points at a missing record")
                }
                return event.hasSameContent(as: try RecordCodec.decode(bytes)) ? .present(position: position) : .conflicting(position: position)
            }
        }
    }
}
