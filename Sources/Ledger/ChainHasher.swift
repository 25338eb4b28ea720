import CSchedule
import Crypto
import Foundation
import Synchronization

/// Hashes the chain of a big request's new records on a thread of its own, right behind the
/// writer's planning, while the writer goes on planning and then puts the records.
///
/// The chain is strictly sequential (each record's bytes hold the previous record's hash), and
/// SHA-256 was the biggest part of the writer's work: about 70 ms of every 200,000 records of
/// 500 bytes. A record's hash needs only its template (prepared by the appender), its position
/// and stream version (known once the planner has decided it), the batch's recorded time and
/// the previous hash. So the planner publishes each entry's version as it decides it
/// (`planned`), this thread hashes behind it (`hashed`), and the writer, once planning is done,
/// puts each record as soon as its previous record's hash is known, patching the header itself.
/// Nothing here touches LMDB.
///
/// One job at a time, handed over with `begin` and taken back with `end`; small requests are
/// hashed by the writer inline (a hand-over costs a thread wake-up;
/// `LedgerOptions.chainHashedEntriesMin`).
final class ChainHasher: @unchecked Sendable {
    private struct Job {
        var records: UnsafeRawBufferPointer
        var items: UnsafeBufferPointer<PreparedRequest.Item>
        var position: UInt64
        var recordedMicros: Int64
    }

    // Written by the writer before `begin` signals the thread, read by the thread until it
    // signals `finished`; `versions` entries are published through `planned`, `hashes` entries
    // through `hashed`.
    private var job: Job?
    private var capacity = 0
    /// Per entry: the new record's stream version, or 0 for an entry that writes no record.
    private var versions = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
    /// Per entry, 32 bytes: its record's hash. `hashes - 32` holds the hash before the request.
    private var hashStorage = UnsafeMutableRawPointer.allocate(byteCount: RecordCodec.hashBytes, alignment: 8)
    private var hashes: UnsafeMutableRawPointer { hashStorage + RecordCodec.hashBytes }

    private let writerCPU = Atomic<Int>(-1)
    private var placedAwayFrom = -2
    /// Requests handed over so far (tests check that big requests do come here).
    let jobsStarted = Atomic<Int>(0)
    private let planned = Atomic<Int>(0)
    private let hashed = Atomic<Int>(0)
    private let cancelled = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let started = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private var thread: Thread?

    deinit {
        versions.deallocate()
        hashStorage.deallocate()
    }

    /// Starts hashing the records of `items` (templates in `records`) after the log's head
    /// `position` whose hash is `previousHash`. The buffers must stay valid until `end`.
    func begin(
        records: UnsafeRawBufferPointer, items: UnsafeBufferPointer<PreparedRequest.Item>, position: UInt64,
        previousHash: [UInt8], recordedMicros: Int64
    ) {
        if items.count > capacity {
            capacity = max(items.count, 2 * capacity)
            versions.deallocate()
            hashStorage.deallocate()
            versions = .allocate(capacity: capacity)
            hashStorage = .allocate(byteCount: RecordCodec.hashBytes * (capacity + 1), alignment: 8)
        }
        previousHash.withUnsafeBytes { hashStorage.copyMemory(from: $0.baseAddress!, byteCount: RecordCodec.hashBytes) }
        job = Job(records: records, items: items, position: position, recordedMicros: recordedMicros)
        writerCPU.store(Int(fapiao_current_cpu()), ordering: .relaxed)
        planned.store(0, ordering: .relaxed)
        hashed.store(0, ordering: .relaxed)
        cancelled.store(false, ordering: .relaxed)
        if thread == nil {
            let thread = Thread { [self] in run() }
            thread.name = "fapiao-ledger-chain"
            self.thread = thread
            thread.start()
        }
        jobsStarted.add(1, ordering: .relaxed)
        started.signal()
    }

    /// The planner decided entry `index`: a new record at `version`, or (0) none.
    @inline(__always)
    func plan(_ index: Int, version: UInt64) {
        versions[index] = version
        planned.store(index + 1, ordering: .releasing)
    }

    /// Waits until entry `index`'s record is hashed, and returns its hash (32 bytes).
    func hash(of index: Int) -> UnsafeRawBufferPointer {
        spin { hashed.load(ordering: .acquiring) > index }
        return UnsafeRawBufferPointer(start: hashes + RecordCodec.hashBytes * index, count: RecordCodec.hashBytes)
    }

    /// Takes the job back: waits for the thread (stopping it early when `cancel`).
    func end(cancel: Bool) {
        if cancel { cancelled.store(true, ordering: .releasing) }
        finished.wait()
        job = nil
    }

    /// Ends the thread (the writer is closing). No job may be running.
    func stop() {
        guard thread != nil else { return }
        stopping.store(true, ordering: .releasing)
        started.signal()
        finished.wait()
        thread = nil
    }

    private func run() {
        var header = [UInt8](repeating: 0, count: RecordCodec.headerBytes)
        while true {
            started.wait()
            if stopping.load(ordering: .acquiring) {
                finished.signal()
                return
            }
            // Wherever the writer runs, this thread runs on another core: woken by it, the
            // scheduler would otherwise often put it on the writer's own core, and the two
            // would take turns instead of working side by side.
            let away = writerCPU.load(ordering: .relaxed)
            if away != placedAwayFrom {
                placedAwayFrom = away
                _ = fapiao_avoid_cpu(Int32(away))
            }
            if let job { hashAll(job, header: &header) }
            finished.signal()
        }
    }

    private func hashAll(_ job: Job, header: inout [UInt8]) {
        var position = job.position
        var previous = UnsafeRawBufferPointer(start: hashStorage, count: RecordCodec.hashBytes)
        for index in job.items.indices {
            var stop = false
            spin {
                if planned.load(ordering: .acquiring) > index { return true }
                stop = cancelled.load(ordering: .acquiring)
                return stop
            }
            if stop { return }
            let version = versions[index]
            if version > 0 {
                position += 1
                let item = job.items[index]
                let template = UnsafeRawBufferPointer(rebasing: job.records[item.recordOffset..<(item.recordOffset + item.recordCount)])
                var sha = SHA256()
                header.withUnsafeMutableBytes { header in
                    header.copyMemory(from: UnsafeRawBufferPointer(rebasing: template[0..<RecordCodec.headerBytes]))
                    RecordCodec.patch(header, position: position, streamVersion: version, recordedMicros: job.recordedMicros, previousHash: previous)
                    sha.update(bufferPointer: UnsafeRawBufferPointer(header))
                }
                sha.update(bufferPointer: UnsafeRawBufferPointer(rebasing: template[RecordCodec.headerBytes...]))
                let out = UnsafeMutableRawBufferPointer(start: hashes + RecordCodec.hashBytes * index, count: RecordCodec.hashBytes)
                sha.finalize().withUnsafeBytes { out.copyMemory(from: $0) }
                previous = UnsafeRawBufferPointer(out)
            }
            hashed.store(index + 1, ordering: .releasing)
        }
    }

    /// Spins on `done`: the other thread is a few records ahead or behind. Yields the core
    /// after a while, and sleeps in short naps when the wait is long (a planner reading cold
    /// B-tree pages from disk).
    @inline(__always)
    private func spin(_ done: () -> Bool) {
        var spins = 0
        while !done() {
            spins += 1
            if spins > 20_000 {
                usleep(20)
            } else if spins > 128 {
                sched_yield()
            }
        }
    }
}
