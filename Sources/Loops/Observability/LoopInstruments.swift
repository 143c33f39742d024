import CoreMetrics
import Foundation
import Tracing

/// The metrics and spans of one loop. Created only when a metrics backend or a tracer is in
/// use: with swift-metrics' and swift-distributed-tracing's no-op defaults a loop has none and
/// its ticks do no instrumentation work at all.
final class LoopInstruments: Sendable {
    /// The metric labels, as a Prometheus backend exports them (dimension `loop` = the name).
    enum Label {
        static let iterations = "loops_iterations_total"
        static let retriedErrors = "loops_retried_errors_total"
        static let unhandledErrors = "loops_unhandled_errors_total"
        static let timeouts = "loops_timeouts_total"
        static let missedTicks = "loops_missed_ticks_total"
        static let bodyDuration = "loops_body_duration_seconds"
        static let wakeLateness = "loops_wake_lateness_seconds"
    }

    struct Metrics: Sendable {
        let iterations: Counter
        let retriedErrors: Counter
        let unhandledErrors: Counter
        let timeouts: Counter
        let missedTicks: Counter
        let bodyDuration: CoreMetrics.Timer
        let wakeLateness: CoreMetrics.Timer

        init(name: String, factory: any MetricsFactory) {
            let dimensions = [("loop", name)]
            iterations = Counter(label: Label.iterations, dimensions: dimensions, factory: factory)
            retriedErrors = Counter(label: Label.retriedErrors, dimensions: dimensions, factory: factory)
            unhandledErrors = Counter(label: Label.unhandledErrors, dimensions: dimensions, factory: factory)
            timeouts = Counter(label: Label.timeouts, dimensions: dimensions, factory: factory)
            missedTicks = Counter(label: Label.missedTicks, dimensions: dimensions, factory: factory)
            bodyDuration = CoreMetrics.Timer(label: Label.bodyDuration, dimensions: dimensions, factory: factory)
            wakeLateness = CoreMetrics.Timer(label: Label.wakeLateness, dimensions: dimensions, factory: factory)
        }
    }

    let name: String
    let metrics: Metrics?
    let tracer: (any Tracer)?
    /// The span of the iteration in progress (a loop runs one body at a time).
    private let span = LockedValue<(any Span)?>(nil)

    /// nil when both the metrics factory and the tracer are the no-op ones.
    static func make(name: String, metrics factory: (any MetricsFactory)?, tracer: (any Tracer)?) -> LoopInstruments? {
        let factory = factory ?? MetricsSystem.factory
        let tracer = tracer ?? InstrumentationSystem.tracer
        let metrics = factory is NOOPMetricsHandler ? nil : Metrics(name: name, factory: factory)
        let activeTracer = tracer is NoOpTracer ? nil : tracer
        guard metrics != nil || activeTracer != nil else { return nil }
        return LoopInstruments(name: name, metrics: metrics, tracer: activeTracer)
    }

    private init(name: String, metrics: Metrics?, tracer: (any Tracer)?) {
        self.name = name
        self.metrics = metrics
        self.tracer = tracer
    }

    /// An iteration's body begins: its lateness is recorded and its span starts.
    func iterationBegan(_ record: LoopStateMachine.IterationRecord, scheduledAt: Date?) {
        metrics?.wakeLateness.recordNanoseconds(record.lateness)
        guard let tracer else { return }
        let started = tracer.startSpan(name, context: .topLevel, ofKind: .internal)
        started.updateAttributes { attributes in
            attributes["loop.name"] = name
            attributes["loop.iteration"] = record.iteration
            if let scheduledAt { attributes["loop.scheduled_at"] = scheduledAt.iso8601 }
            attributes["loop.lateness_ms"] = Double(record.lateness) / 1e6
        }
        let previous = span.withLock { current in
            defer { current = started }
            return current
        }
        // A span left over means its iteration never reported an end: close it rather than leak.
        previous?.end()
    }

    /// The context the body runs in, so that its own spans are children of the iteration's.
    var iterationContext: InstrumentationContext? {
        span.withLock { $0?.context }
    }

    func missed(_ ticks: Int64) {
        guard ticks > 0 else { return }
        metrics?.missedTicks.increment(by: ticks)
    }

    /// A body attempt succeeded after `duration` nanoseconds: the iteration ends.
    func iterationSucceeded(duration: Int64?) {
        if let metrics {
            metrics.iterations.increment()
            if let duration { metrics.bodyDuration.recordNanoseconds(duration) }
        }
        endSpan(error: nil)
    }

    /// A body attempt threw; `retried` when it will run again after a back-off.
    func attemptFailed(_ error: any Error, duration: Int64?, retried: Bool) {
        if let metrics {
            if let duration { metrics.bodyDuration.recordNanoseconds(duration) }
            if (error as? LoopError)?.code == .timedOut { metrics.timeouts.increment() }
            if retried {
                metrics.retriedErrors.increment()
            } else {
                metrics.unhandledErrors.increment()
            }
        }
        if tracer != nil {
            span.withLock { $0 }?.recordError(error)
        }
        if !retried { endSpan(error: error) }
    }

    /// The iteration ended without a result of its own (its run was cancelled).
    func iterationAbandoned() {
        endSpan(error: nil)
    }

    private func endSpan(error: (any Error)?) {
        guard tracer != nil, let ended = span.withLock({ current in defer { current = nil }; return current }) else { return }
        if let error { ended.setStatus(SpanStatus(code: .error, message: "\(error)")) }
        ended.end()
    }
}
