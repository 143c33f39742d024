import CoreMetrics
import Dispatch
import Foundation
import Loops
import LoopsCommandLine
import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `--metrics-file PATH`: the loop's metrics in the Prometheus text exposition format, for
/// node_exporter's textfile collector (`--collector.textfile.directory`).
///
/// The file is replaced atomically, as that collector requires: the text goes to `PATH.tmp` in
/// the same directory, is fsync-ed, and renamed over PATH, so a scrape never reads half a
/// file. It is written at start-up (a path that cannot be written is bad input), after every
/// metric update of the loop — so after every run, once the library has counted it — and at
/// exit. The writes happen on a queue of their own, coalesced, so a slow disk never delays a
/// run; ``flush()`` waits for them.
final class MetricsFile: Sendable {
    let path: String
    let registry: PrometheusCollectorRegistry
    /// What the loop records into; every update schedules a write of the file.
    let factory: FileWritingMetricsFactory
    /// The tool's own gauges (beside the library's `loops_*` metrics).
    let lastExitStatus: Prometheus.Gauge
    let lastSuccess: Prometheus.Gauge
    /// A write is scheduled and has not begun: later updates are in it.
    private let pending = Atomic<Bool>(false)
    private let queue = DispatchQueue(label: "loops.metrics-file")
    /// Called with the error of the first failed write after start-up (and after each
    /// success that follows a failure): `loops run` prints one warning.
    private let reportFailure: @Sendable (String) -> Void
    private let failing = Atomic<Bool>(false)

    /// Checks the path and writes the file once.
    ///
    /// - Throws: ``CommandLineError`` naming `--metrics-file` and why it cannot be written.
    init(path: String, loopName: String, reportFailure: @escaping @Sendable (String) -> Void) throws {
        guard !path.isEmpty else {
            throw CommandLineError("--metrics-file: the path is empty")
        }
        if path.hasSuffix("/") {
            throw CommandLineError("--metrics-file: '\(path)' is a directory, not a file")
        }
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
            throw CommandLineError("--metrics-file: '\(path)' is a directory, not a file")
        }
        self.path = path
        self.reportFailure = reportFailure
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var prometheus = PrometheusMetricsFactory(registry: registry)
        // The library's defaults end at 10 s; commands run for minutes or hours.
        prometheus.durationHistogramBuckets = [
            "loops_body_duration_seconds": [
                .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(10), .seconds(30),
                .seconds(60), .seconds(300), .seconds(900), .seconds(1800), .seconds(3600), .seconds(4 * 3600),
            ],
            "loops_wake_lateness_seconds": [
                .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
                .milliseconds(500), .seconds(1), .seconds(10), .seconds(60),
            ],
        ]
        let labels = [("loop", loopName)]
        lastExitStatus = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "loops",
                subsystem: "run",
                metricName: "last_exit",
                unitName: "status",
                helpText: "Exit status of the latest run of the command (128+N when killed by signal N)."
            ),
            labels: labels
        )
        lastSuccess = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "loops",
                subsystem: "run",
                metricName: "last_success_timestamp",
                unitName: "seconds",
                helpText: "When the latest successful run of the command ended, in seconds since 1970."
            ),
            labels: labels
        )
        factory = FileWritingMetricsFactory(prometheus)
        factory.file.withLock { $0 = self }
        do {
            try write()
        } catch {
            throw CommandLineError("--metrics-file: cannot write '\(path)': \(error)")
        }
    }

    /// A run ended with `status` (a shell status), at `end`.
    func runEnded(status: Int32, at end: Date) {
        lastExitStatus.set(Int64(status))
        if status == 0 { lastSuccess.set(end.timeIntervalSince1970) }
        scheduleWrite()
    }

    /// Writes the file soon, on the queue; an update that arrives while a write is scheduled
    /// but not begun is in that write.
    func scheduleWrite() {
        guard !pending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.async { [self] in
            pending.store(false, ordering: .sequentiallyConsistent)
            do {
                try write()
                failing.store(false, ordering: .relaxed)
            } catch {
                if !failing.exchange(true, ordering: .relaxed) {
                    reportFailure("warning: cannot write --metrics-file '\(path)': \(error); the loop runs on")
                }
            }
        }
    }

    /// Writes the file now and waits for the writes scheduled before.
    func flush() {
        scheduleWrite()
        queue.sync {}
    }

    /// PATH.tmp, fsync, rename over PATH: the textfile collector's convention.
    private func write() throws {
        let text = registry.emitToBuffer()
        let temporary = path + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw MetricsFileError(operation: "open '\(temporary)'", errno: errno) }
        var closed = false
        defer { if !closed { close(descriptor) } }
        var written = 0
        while written < text.count {
            let result = text.withUnsafeBytes { bytes in
                writeBytes(descriptor, bytes.baseAddress! + written, bytes.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                let code = errno
                unlink(temporary)
                throw MetricsFileError(operation: "write '\(temporary)'", errno: code)
            }
            written += result
        }
        guard fsync(descriptor) == 0 else {
            let code = errno
            unlink(temporary)
            throw MetricsFileError(operation: "fsync '\(temporary)'", errno: code)
        }
        closed = true
        guard close(descriptor) == 0 else {
            let code = errno
            unlink(temporary)
            throw MetricsFileError(operation: "close '\(temporary)'", errno: code)
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw MetricsFileError(operation: "rename '\(temporary)' to '\(path)'", errno: code)
        }
    }
}

/// `write(2)`, named apart from ``MetricsFile``'s own `write()`.
private func writeBytes(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}

/// A failed system call while writing the metrics file.
struct MetricsFileError: Error, CustomStringConvertible {
    let operation: String
    let errno: Int32
    var description: String { "\(operation) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// A swift-metrics factory that records into Prometheus and schedules a write of the metrics
/// file after each update.
final class FileWritingMetricsFactory: MetricsFactory, Sendable {
    let prometheus: PrometheusMetricsFactory
    /// Set once, right after the file exists (the file owns the factory).
    let file = Mutex<MetricsFile?>(nil)

    init(_ prometheus: PrometheusMetricsFactory) {
        self.prometheus = prometheus
    }

    func updated() {
        file.withLock { $0 }?.scheduleWrite()
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        WritingCounter(inner: prometheus.makeCounter(label: label, dimensions: dimensions), factory: self)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        WritingFloatingPointCounter(inner: prometheus.makeFloatingPointCounter(label: label, dimensions: dimensions), factory: self)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        WritingRecorder(inner: prometheus.makeRecorder(label: label, dimensions: dimensions, aggregate: aggregate), factory: self)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        WritingMeter(inner: prometheus.makeMeter(label: label, dimensions: dimensions), factory: self)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        WritingTimer(inner: prometheus.makeTimer(label: label, dimensions: dimensions), factory: self)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let handler = handler as? WritingCounter { prometheus.destroyCounter(handler.inner) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let handler = handler as? WritingFloatingPointCounter { prometheus.destroyFloatingPointCounter(handler.inner) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let handler = handler as? WritingRecorder { prometheus.destroyRecorder(handler.inner) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let handler = handler as? WritingMeter { prometheus.destroyMeter(handler.inner) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let handler = handler as? WritingTimer { prometheus.destroyTimer(handler.inner) }
    }
}

private final class WritingCounter: CounterHandler, Sendable {
    let inner: any CounterHandler
    let factory: FileWritingMetricsFactory
    init(inner: any CounterHandler, factory: FileWritingMetricsFactory) {
        self.inner = inner
        self.factory = factory
    }
    func increment(by amount: Int64) {
        inner.increment(by: amount)
        factory.updated()
    }
    func reset() {
        inner.reset()
        factory.updated()
    }
}

private final class WritingFloatingPointCounter: FloatingPointCounterHandler, Sendable {
    let inner: any FloatingPointCounterHandler
    let factory: FileWritingMetricsFactory
    init(inner: any FloatingPointCounterHandler, factory: FileWritingMetricsFactory) {
        self.inner = inner
        self.factory = factory
    }
    func increment(by amount: Double) {
        inner.increment(by: amount)
        factory.updated()
    }
    func reset() {
        inner.reset()
        factory.updated()
    }
}

private final class WritingRecorder: RecorderHandler, Sendable {
    let inner: any RecorderHandler
    let factory: FileWritingMetricsFactory
    init(inner: any RecorderHandler, factory: FileWritingMetricsFactory) {
        self.inner = inner
        self.factory = factory
    }
    func record(_ value: Int64) {
        inner.record(value)
        factory.updated()
    }
    func record(_ value: Double) {
        inner.record(value)
        factory.updated()
    }
}

private final class WritingMeter: MeterHandler, Sendable {
    let inner: any MeterHandler
    let factory: FileWritingMetricsFactory
    init(inner: any MeterHandler, factory: FileWritingMetricsFactory) {
        self.inner = inner
        self.factory = factory
    }
    func set(_ value: Int64) {
        inner.set(value)
        factory.updated()
    }
    func set(_ value: Double) {
        inner.set(value)
        factory.updated()
    }
    func increment(by amount: Double) {
        inner.increment(by: amount)
        factory.updated()
    }
    func decrement(by amount: Double) {
        inner.decrement(by: amount)
        factory.updated()
    }
}

private final class WritingTimer: TimerHandler, Sendable {
    let inner: any TimerHandler
    let factory: FileWritingMetricsFactory
    init(inner: any TimerHandler, factory: FileWritingMetricsFactory) {
        self.inner = inner
        self.factory = factory
    }
    func recordNanoseconds(_ duration: Int64) {
        inner.recordNanoseconds(duration)
        factory.updated()
    }
}
