import Dispatch
import FapiaoDomain
import Synchronization

// Streaming generation. Invoices are made in rounds on `workers` threads (each invoice is a
// pure function of its index), then written in index order, so the output is the same for
// any number of threads and memory stays constant however many invoices are asked for.
// System streams (maintenance windows) are woven in as the issue clock passes them.

/// What a generation produced.
public struct GenerationSummary: Sendable {
    public var invoices = 0
    public var events = 0
    public var bytes = 0
    public var intended: [Intended: Int] = [:]
    /// `intended/variant` → invoices.
    public var variants: [String: Int] = [:]
    public var firstIssueMicros: Int64 = .max
    public var latestEventMicros: Int64 = .min
}

public struct DataGenerator: Sendable {
    public let options: GeneratorOptions
    let world: World

    /// Invoices per worker per round: a round's output (~600 bytes an event, ~6 events an
    /// invoice) stays near 8 MiB per worker.
    static let chunkInvoices = 2_048
    /// Output is handed to the sink in pieces of about this size.
    static let flushBytes = 4 << 20

    public init(options: GeneratorOptions) {
        precondition((0...GeneratorOptions.invoicesMax).contains(options.invoices), "invoices out of range")
        self.options = options
        world = World(options: options)
    }

    /// Generates every event to `events` and, when given, the manifest to `manifest`, each as
    /// JSON Lines in pieces of a few MiB. `progress` gets (invoices done, invoices total).
    public func generate(
        events: (UnsafeRawBufferPointer) throws -> Void,
        manifest: ((UnsafeRawBufferPointer) throws -> Void)? = nil,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> GenerationSummary {
        var output = Output()
        var manifestOutput = manifest.map { _ in Output() }
        var summary = GenerationSummary()
        for emitted in header() { output.write(emitted, summary: &summary) }
        try output.flushIfFull(events)
        var maintenance = world.systems.map { MaintenanceCursor(system: $0, day: Clock.cstDay(world.schedule.startMicros)) }
        var clock = world.schedule.startMicros
        let workers = max(1, options.workers)
        let roundInvoices = Self.chunkInvoices * workers
        // While one round is written, the next is being made.
        var round: Round? = options.invoices > 0 ? Round(self, from: 0, count: min(roundInvoices, options.invoices), workers: workers) : nil
        while let current = round {
            let following = current.end < options.invoices
                ? Round(self, from: current.end, count: min(roundInvoices, options.invoices - current.end), workers: workers) : nil
            for chunk in current.stories() {
                for story in chunk {
                    clock = max(clock, story.issueMicros)
                    for index in maintenance.indices { maintenance[index].emit(upTo: clock, into: &output, summary: &summary) }
                    output.write(story, summary: &summary)
                    summary.invoices += 1
                    summary.firstIssueMicros = min(summary.firstIssueMicros, story.issueMicros)
                    summary.intended[story.manifest.intended, default: 0] += 1
                    summary.variants[story.manifest.intended.rawValue + "/" + story.manifest.variant, default: 0] += 1
                    manifestOutput?.buffer += story.manifestLine
                }
                try output.flushIfFull(events)
                if let manifest { try manifestOutput?.flushIfFull(manifest) }
            }
            progress(current.end, options.invoices)
            round = following
        }
        // The windows up to the last event: a query in a window needs the window recorded.
        for index in maintenance.indices { maintenance[index].emit(upTo: summary.latestEventMicros, into: &output, summary: &summary) }
        try output.flush(events)
        if let manifest { try manifestOutput?.flush(manifest) }
        return summary
    }

    /// One round of invoices, made in the background on `workers` threads, split in index order.
    final class Round: Sendable {
        let end: Int
        private let group = DispatchGroup()
        private let made = Mutex<[Int: [Story]]>([:])
        private let parts: Int

        init(_ generator: DataGenerator, from first: Int, count: Int, workers: Int) {
            end = first + count
            let per = (count + workers - 1) / workers
            let ranges = (0..<workers).map { first + $0 * per ..< min(first + ($0 + 1) * per, first + count) }.filter { !$0.isEmpty }
            parts = ranges.count
            for (part, range) in ranges.enumerated() {
                DispatchQueue.global().async(group: group) { [self] in
                    let stories = generator.stories(range)
                    made.withLock { $0[part] = stories }
                }
            }
        }

        /// Waits for the round; its stories, part by part.
        func stories() -> [[Story]] {
            group.wait()
            return made.withLock { done in (0..<parts).map { done[$0]! } }
        }
    }

    func stories(_ range: Range<Int>) -> [Story] {
        range.map { index in
            var writer = StoryWriter(world: world, index: index)
            return writer.write()
        }
    }

    /// The systems' registrations and the shared users' grants and revocations, before the period.
    func header() -> [Emitted] {
        var events: [Emitted] = []
        for (offset, system) in world.systems.enumerated() {
            events.append(Emitted(
                subject: system.subject, source: system.accessSource, id: "reg-\(system.id)",
                micros: world.setupMicros + Int64(offset) * Clock.minute,
                event: .systemRegistered(SystemRegistered(system: system.id, name: system.name, ownerTaxId: system.owner.taxId,
                                                          requiresReview: system.requiresReview, visibleStatuses: system.visibleStatuses))))
        }
        for user in world.sharedUsers {
            let system = world.systems[user.system]
            for (number, change) in world.accessChanges(of: user).enumerated() {
                let data = AccessChange(system: system.id, user: user.id, scope: change.scope)
                events.append(Emitted(
                    subject: system.userSubject(user.id), source: system.accessSource,
                    id: "\(change.granted ? "grant" : "revoke")-\(user.id)-\(number + 1)", micros: change.at,
                    event: change.granted ? .accessGranted(data) : .accessRevoked(data)))
            }
        }
        return events
    }
}

/// JSON Lines into a buffer, handed to the sink when full.
struct Output {
    var buffer: [UInt8] = []

    init() { buffer.reserveCapacity(DataGenerator.flushBytes + (1 << 20)) }

    mutating func write(_ emitted: Emitted, summary: inout GenerationSummary) {
        let before = buffer.count
        emitted.encode(into: &buffer)
        summary.events += 1
        summary.bytes += buffer.count - before
        summary.latestEventMicros = max(summary.latestEventMicros, emitted.micros)
    }

    mutating func write(_ story: Story, summary: inout GenerationSummary) {
        buffer += story.lines
        summary.events += story.eventCount
        summary.bytes += story.lines.count
        summary.latestEventMicros = max(summary.latestEventMicros, story.latestMicros)
    }


    mutating func flushIfFull(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if buffer.count >= DataGenerator.flushBytes { try flush(sink) }
    }

    mutating func flush(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try sink($0) }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Emits one system's maintenance windows in time order, day by day, as the clock passes them.
struct MaintenanceCursor {
    let system: ReceivingSystem
    var day: Int64
    var pending: [MaintenancePlan.Window] = []

    init(system: ReceivingSystem, day: Int64) {
        self.system = system
        self.day = day
    }

    mutating func emit(upTo micros: Int64, into output: inout Output, summary: inout GenerationSummary) {
        while true {
            if pending.isEmpty {
                guard Clock.start(ofDay: day) <= micros else { return }
                pending = system.maintenance.windows(onDay: day)
                day += 1
                continue
            }
            let window = pending[0]
            guard window.start <= micros else { return }
            pending.removeFirst()
            output.write(Emitted(subject: system.subject, source: system.opsSource, id: "mnt-\(window.id)-start", micros: window.start,
                                 event: .maintenanceStarted(MaintenanceStarted(system: system.id, reason: window.reason))), summary: &summary)
            output.write(Emitted(subject: system.subject, source: system.opsSource, id: "mnt-\(window.id)-end", micros: window.end,
                                 event: .maintenanceEnded(MaintenanceEnded(system: system.id))), summary: &summary)
        }
    }
}
