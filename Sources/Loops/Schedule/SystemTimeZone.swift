import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The system's time zone, re-read when `TZ` or the `/etc/localtime` link changes, so that
/// schedules in the local zone follow a change of the machine's zone without a restart
/// (Foundation's `TimeZone.current` is cached for the life of the process).
enum SystemTimeZone {
    private static let cache = Mutex<(key: String, zone: TimeZone)?>(nil)

    /// The zone now in force.
    static var current: TimeZone {
        let key = currentKey()
        if let cached = cache.withLock({ $0 }), cached.key == key {
            return cached.zone
        }
        let zone = resolve(key) ?? TimeZone.current
        cache.withLock { $0 = (key, zone) }
        return zone
    }

    /// `TZ=<value>` when set, else `link:<target of /etc/localtime>`.
    private static func currentKey() -> String {
        if let tz = getenv("TZ") {
            return "TZ=" + String(cString: tz)
        }
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/etc/localtime", &buffer, buffer.count - 1)
        guard length > 0 else { return "link:" }
        return "link:" + String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func resolve(_ key: String) -> TimeZone? {
        if key.hasPrefix("TZ=") {
            var name = String(key.dropFirst(3))
            if name.hasPrefix(":") { name.removeFirst() }
            if name.isEmpty { return TimeZone(identifier: "UTC") }
            if name.hasPrefix("/") { return zone(fromPath: name) }
            return TimeZone(identifier: name)
        }
        let target = String(key.dropFirst(5))
        return target.isEmpty ? nil : zone(fromPath: target)
    }

    /// `/usr/share/zoneinfo/Europe/Berlin` → `Europe/Berlin`.
    private static func zone(fromPath path: String) -> TimeZone? {
        guard let range = path.range(of: "zoneinfo/") else { return nil }
        return TimeZone(identifier: String(path[range.upperBound...]))
    }
}
