import Audit

/// How the server listens and the limits it keeps. Every limit is named with its unit last.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// The largest request body; larger ones get 413 before they are read.
    public var requestBytesMax: Int
    /// The most events one `POST /v1/events` may carry (flags added beside them count too:
    /// they must fit the ledger's `requestEventsMax`).
    public var batchEventsMax: Int
    /// Live Server-Sent Events connections at once; beyond it 429.
    public var subscribersMax: Int
    /// Bytes of frames one SSE connection may hold while its client reads slowly; when full,
    /// that connection alone waits (it reads the log at its own pace; nobody else is slowed).
    public var streamBufferBytesMax: Int
    /// Records one SSE connection reads from the log at a time.
    public var streamChunkRecords: Int
    /// A comment line on idle SSE connections, so proxies and clients know it is alive.
    public var heartbeatSeconds: Double
    /// How long a query with `minPosition` waits for the projections to reach it.
    public var projectionWaitSecondsMax: Double
    /// When to sign a tree head by itself (with a signing key).
    public var checkpointPolicy: CheckpointPolicy
    /// How often the checkpoint policy is evaluated.
    public var checkpointPollMilliseconds: Int

    public init(
        host: String = "127.0.0.1", port: Int = 8080, requestBytesMax: Int = 8 << 20, batchEventsMax: Int = 4_000,
        subscribersMax: Int = 256, streamBufferBytesMax: Int = 1 << 20, streamChunkRecords: Int = 1_000,
        heartbeatSeconds: Double = 15, projectionWaitSecondsMax: Double = 10,
        checkpointPolicy: CheckpointPolicy = CheckpointPolicy(everyEvents: 10_000, everySeconds: 60), checkpointPollMilliseconds: Int = 250
    ) {
        self.host = host
        self.port = port
        self.requestBytesMax = requestBytesMax
        self.batchEventsMax = batchEventsMax
        self.subscribersMax = subscribersMax
        self.streamBufferBytesMax = streamBufferBytesMax
        self.streamChunkRecords = streamChunkRecords
        self.heartbeatSeconds = heartbeatSeconds
        self.projectionWaitSecondsMax = projectionWaitSecondsMax
        self.checkpointPolicy = checkpointPolicy
        self.checkpointPollMilliseconds = checkpointPollMilliseconds
    }

    /// Hosts a server without tokens may bind: only this machine can reach it.
    public static let loopbackHosts: Set<String> = ["127.0.0.1", "localhost", "::1"]
}
