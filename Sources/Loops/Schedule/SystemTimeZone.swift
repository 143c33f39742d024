package import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The system's time zone, re-read when `TZ` or the `/etc/localtime` link changes, so that
/// schedules in the local zone follow a change of the machine's zone without a restart
/// (Foundation's `TimeZone.current` is cached for the life of the process).
///
/// Where the zone comes from is a task-local ``source``, so that a test can point the code it
/// runs (and the loop tasks that code starts, which inherit task-locals) at a link of its own,
/// or at a simulated zone, without changing what any other test or task sees.
package enum SystemTimeZone {
    /// Where the zone is read from.
    package enum Source: Sendable {
        /// `TZ` (when `readsTZ` and it is set), else the zone the link at `localtimePath`
        /// points to.
        case system(localtimePath: String, readsTZ: Bool)
        /// A zone set by a test (LoopsTestKit's `VirtualClock`), changed at will; the
        /// machine's zone while it holds none.
        case simulated(SimulatedTimeZone)
    }

    /// The link the C library reads the zone from.
    package static let defaultLocaltimePath = "/etc/localtime"

    /// Where ``current`` reads the zone; the machine's `TZ` and `/etc/localtime` by default.
    @TaskLocal package static var source = Source.system(localtimePath: defaultLocaltimePath, readsTZ: true)

    /// The last zone resolved per source (path and `TZ` use), and the key it was resolved
    /// from. A link that is missing or unresolvable keeps the last zone of its path: replacing
    /// the link with `ln -sf` (unlink, then symlink) leaves a moment without one, and a loop
    /// woken in that moment must not compute its deadline in some unrelated fallback zone.
    private static let cache = LockedValue<[String: (key: String, zone: TimeZone)]>([:])

    /// The zone now in force.
    package static var current: TimeZone {
        switch source {
        case .simulated(let simulated):
            return simulated.zone ?? systemZone(localtimePath: defaultLocaltimePath, readsTZ: true)
        case .system(let path, let readsTZ):
            return systemZone(localtimePath: path, readsTZ: readsTZ)
        }
    }

    /// Forgets what was resolved, and Foundation's cached system zone with it: called when the
    /// link changed, so that a zone read from something other than a link (a regular file,
    /// which Foundation parses) is read again too.
    package static func invalidate() {
        cache.withLock { $0.removeAll() }
        NSTimeZone.resetSystemTimeZone()
    }

    private static func systemZone(localtimePath path: String, readsTZ: Bool) -> TimeZone {
        let key = currentKey(localtimePath: path, readsTZ: readsTZ)
        let slot = (readsTZ ? "TZ|" : "") + path
        let cached = cache.withLock { $0[slot] }
        if let cached, cached.key == key {
            return cached.zone
        }
        let zone: TimeZone
        if let resolved = resolve(key) {
            zone = resolved
        } else if let cached, key.hasPrefix("link:") {
            // Mid-replacement, or a link to something that is not a zone: keep the last one.
            zone = cached.zone
        } else {
            zone = TimeZone.current
        }
        cache.withLock { $0[slot] = (key, zone) }
        return zone
    }

    /// `TZ=<value>` when `readsTZ` and set, else `link:<target of the link>` (`link:` when
    /// there is no link), or `file:` when the path is not a symbolic link.
    private static func currentKey(localtimePath path: String, readsTZ: Bool) -> String {
        if readsTZ, let tz = getenv("TZ") {
            return "TZ=" + String(cString: tz)
        }
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length > 0 else { return errno == EINVAL ? "file:" : "link:" }
        return "link:" + String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The zone a key names, nil when it names none (then the caller falls back).
    static func resolve(_ key: String) -> TimeZone? {
        if key.hasPrefix("TZ=") {
            var name = String(key.dropFirst(3))
            if name.hasPrefix(":") { name.removeFirst() }
            if name.isEmpty { return TimeZone(identifier: "UTC") }
            if name.hasPrefix("/") { return zone(fromPath: name) }
            return TimeZone(identifier: name)
        }
        guard key.hasPrefix("link:") else { return nil }
        let target = String(key.dropFirst(5))
        return target.isEmpty ? nil : zone(fromPath: target)
    }

    /// `/usr/share/zoneinfo/Europe/Berlin` (or `../usr/share/zoneinfo/posix/Europe/Berlin`) →
    /// `Europe/Berlin`.
    private static func zone(fromPath path: String) -> TimeZone? {
        guard let range = path.range(of: "zoneinfo/", options: .backwards) else { return nil }
        var name = Substring(path[range.upperBound...])
        // tzdata's `posix/` and `right/` trees hold the same zones (`right/` counts leap
        // seconds, which Foundation does not model).
        for prefix in ["posix/", "right/"] where name.hasPrefix(prefix) {
            name = name.dropFirst(prefix.count)
        }
        return TimeZone(identifier: String(name))
    }
}

/// A system zone a test sets and changes (see ``SystemTimeZone/Source/simulated(_:)``).
package final class SimulatedTimeZone: Sendable {
    private let storage: LockedValue<TimeZone?>

    /// A simulated system zone that starts as `zone` (nil: the machine's, until set).
    package init(_ zone: TimeZone? = nil) {
        storage = LockedValue(zone)
    }

    /// The zone now in force; nil for the machine's.
    package var zone: TimeZone? {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}
