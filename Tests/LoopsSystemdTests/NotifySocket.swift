import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An AF_UNIX datagram socket bound in a fresh temporary directory: a stand-in for systemd's
/// notification socket. Each received datagram is kept with the time it arrived.
final class NotifySocket: Sendable {
    let directory: URL
    let path: String
    private let fd: Int32

    init() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("loops-notify-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("notify").path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in bytes.enumerated() where index < buffer.count - 1 { buffer[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    /// Closes the socket and removes its directory; call once, when the test is done.
    func cleanUp() {
        close(fd)
        try? FileManager.default.removeItem(at: directory)
    }

    /// Datagrams with their arrival instants, until `deadline` or until `stop` holds; the
    /// waiting happens on a thread of its own, so the loops under test keep the task pool.
    func receive(
        until deadline: ContinuousClock.Instant,
        stop: @escaping @Sendable ([(message: String, at: ContinuousClock.Instant)]) -> Bool = { _ in false }
    ) async -> [(message: String, at: ContinuousClock.Instant)] {
        await withCheckedContinuation { continuation in
            let fd = fd
            Thread.detachNewThread {
                continuation.resume(returning: Self.blockingReceive(fd: fd, until: deadline, stop: stop))
            }
        }
    }

    /// The datagrams that arrive until `deadline` (continuous-clock instants of arrival), or until
    /// `stop` returns true for the messages so far.
    private static func blockingReceive(
        fd: Int32,
        until deadline: ContinuousClock.Instant,
        stop: @Sendable ([(message: String, at: ContinuousClock.Instant)]) -> Bool
    ) -> [(message: String, at: ContinuousClock.Instant)] {
        var received: [(message: String, at: ContinuousClock.Instant)] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stop(received) {
            let remaining = deadline - .now
            guard remaining > .zero else { break }
            let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, milliseconds) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                received.append((String(decoding: buffer[0..<count], as: UTF8.self), .now))
            }
        }
        return received
    }
}

/// Sets environment variables for the duration of `body` and restores the previous values.
@discardableResult
func withEnvironment<T>(_ values: [String: String?], _ body: () throws -> T) rethrows -> T {
    let saved = values.keys.map { key in (key, getenv(key).map { String(cString: $0) }) }
    for (key, value) in values {
        if let value { setenv(key, value, 1) } else { unsetenv(key) }
    }
    defer {
        for (key, value) in saved {
            if let value { setenv(key, value, 1) } else { unsetenv(key) }
        }
    }
    return try body()
}
