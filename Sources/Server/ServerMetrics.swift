import Foundation
import CoreMetrics
import Ledger
import Metrics
import Prometheus
import Projections
import Synchronization

/// The server's metrics, through swift-metrics into a Prometheus registry of its own (not the
/// process-wide `MetricsSystem`, so several servers, as in tests, never share counters).
/// Gauges of state (projection lag, map usage, head) are read when `/metrics` is scraped.
final class ServerMetrics: Sendable {
    let registry: PrometheusCollectorRegistry
    let appendedEvents: CoreMetrics.Counter
    let presentEvents: CoreMetrics.Counter
    let appendRequests: CoreMetrics.Counter
    let refusedRequests: CoreMetrics.Counter
    let batchEvents: CoreMetrics.Recorder
    let commitLatency: CoreMetrics.Timer
    let subscribers: CoreMetrics.Meter
    let headPosition: CoreMetrics.Meter
    let mapUsedBytes: CoreMetrics.Meter
    let mapSizeBytes: CoreMetrics.Meter
    let projectionLagEvents: [String: CoreMetrics.Meter]
    let projectionLagSeconds: [String: CoreMetrics.Meter]

    init(projections: [String]) {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["fapiao_append_batch_events"] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000]
        factory.durationHistogramBuckets["fapiao_append_commit_seconds"] = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
        ]
        appendedEvents = CoreMetrics.Counter(label: "fapiao_events_appended_total", factory: factory)
        presentEvents = CoreMetrics.Counter(label: "fapiao_events_already_present_total", factory: factory)
        appendRequests = CoreMetrics.Counter(label: "fapiao_append_requests_total", factory: factory)
        refusedRequests = CoreMetrics.Counter(label: "fapiao_append_refused_total", factory: factory)
        batchEvents = CoreMetrics.Recorder(label: "fapiao_append_batch_events", aggregate: true, factory: factory)
        commitLatency = CoreMetrics.Timer(label: "fapiao_append_commit_seconds", factory: factory)
        subscribers = CoreMetrics.Meter(label: "fapiao_sse_subscribers", factory: factory)
        headPosition = CoreMetrics.Meter(label: "fapiao_ledger_head_position", factory: factory)
        mapUsedBytes = CoreMetrics.Meter(label: "fapiao_ledger_map_used_bytes", factory: factory)
        mapSizeBytes = CoreMetrics.Meter(label: "fapiao_ledger_map_size_bytes", factory: factory)
        var lagEvents: [String: CoreMetrics.Meter] = [:]
        var lagSeconds: [String: CoreMetrics.Meter] = [:]
        for name in projections {
            lagEvents[name] = CoreMetrics.Meter(label: "fapiao_projection_lag_events", dimensions: [("projection", name)], factory: factory)
            lagSeconds[name] = CoreMetrics.Meter(label: "fapiao_projection_lag_seconds", dimensions: [("projection", name)], factory: factory)
        }
        projectionLagEvents = lagEvents
        projectionLagSeconds = lagSeconds
    }

    /// Reads the state gauges, then renders everything in the Prometheus text format.
    func scrape(ledger: Ledger, engine: ProjectionEngine) -> String {
        let usage = ledger.storageUsage()
        mapUsedBytes.set(Double(usage.usedBytes))
        mapSizeBytes.set(Double(usage.mapSizeBytes))
        if let head = try? ledger.headPosition() { headPosition.set(Double(head)) }
        for status in (try? engine.status()) ?? [] {
            projectionLagEvents[status.name]?.set(Double(status.lagEvents))
            projectionLagSeconds[status.name]?.set(Double(status.lagMilliseconds) / 1000)
        }
        return registry.emitToString()
    }
}

/// Counts live SSE connections against `subscribersMax`.
final class SubscriberSlots: Sendable {
    let max: Int
    private let count = Mutex(0)
    private let gauge: CoreMetrics.Meter

    init(max: Int, gauge: CoreMetrics.Meter) {
        self.max = max
        self.gauge = gauge
    }

    /// A slot, or nil when all are taken.
    func acquire() -> Bool {
        let taken: Int? = count.withLock { count in
            guard count < max else { return nil }
            count += 1
            return count
        }
        if let taken { gauge.set(Double(taken)) }
        return taken != nil
    }

    func release() {
        let now = count.withLock { count in
            count -= 1
            return count
        }
        gauge.set(Double(now))
    }

    var inUse: Int { count.withLock { $0 } }
}
