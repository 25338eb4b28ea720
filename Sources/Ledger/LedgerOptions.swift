/// How a ledger is opened. Every limit is named with its unit last.
public struct LedgerOptions: Sendable {
    /// The memory map's size: the most the ledger can hold until reopened with more. Sparse.
    public var mapSizeBytes: Int
    /// Open read-only: for reading while another process writes.
    public var readOnly: Bool
    /// The largest stored record (header, attributes and data).
    public var recordBytesMax: Int
    /// The most events one append request may carry (it is written in one transaction).
    public var requestEventsMax: Int
    /// The most events the group-commit writer puts in one transaction.
    public var batchEventsMax: Int
    /// The most events waiting for the writer; beyond it appenders get `overloaded`.
    public var queuedEventsMax: Int
    /// The most records one read returns.
    public var readEventsMax: Int
    /// Concurrent readers across processes.
    public var readersMax: UInt32
    /// Index keys of recent records wait in memory (`TailIndex`) until this many have gathered,
    /// then go into the B-trees in one sorted pass.
    public var indexMergeEventsMin: Int
    /// An idle writer merges the waiting index keys after this long without appends.
    public var indexMergeIdleMilliseconds: Int
    /// Requests with at least this many events have their records' hash chain computed on a
    /// thread of its own, beside the writer's planning (`ChainHasher`). Tests move it.
    var chainHashedEntriesMin = 64
    /// A writer opening a ledger whose index/ lacks more records than this merges them in
    /// steps of this many before it starts (`Ledger.catchUpIndex`). Tests move it.
    var indexCatchUpEvents = 1 << 20

    public static let defaultMapSizeBytes = 64 << 30

    public init(
        mapSizeBytes: Int = LedgerOptions.defaultMapSizeBytes, readOnly: Bool = false,
        recordBytesMax: Int = 256 << 10, requestEventsMax: Int = 10_000, batchEventsMax: Int = 10_000,
        queuedEventsMax: Int = 100_000, readEventsMax: Int = 10_000, readersMax: UInt32 = 254,
        indexMergeEventsMin: Int = 65_536, indexMergeIdleMilliseconds: Int = 1_000
    ) {
        self.indexMergeEventsMin = indexMergeEventsMin
        self.indexMergeIdleMilliseconds = indexMergeIdleMilliseconds
        self.mapSizeBytes = mapSizeBytes
        self.readOnly = readOnly
        self.recordBytesMax = recordBytesMax
        self.requestEventsMax = requestEventsMax
        self.batchEventsMax = batchEventsMax
        self.queuedEventsMax = queuedEventsMax
        self.readEventsMax = readEventsMax
        self.readersMax = readersMax
    }

    public static var readOnlyDefault: LedgerOptions { LedgerOptions(readOnly: true) }

    // Field limits: they keep every index key within LMDB's 511-byte key limit.
    public static let streamBytesMax = 256
    public static let sourceBytesMax = 255
    public static let idBytesMax = 255
    public static let typeBytesMax = 255
    public static let timeBytesMax = 64
    public static let contentTypeBytesMax = 255
}
