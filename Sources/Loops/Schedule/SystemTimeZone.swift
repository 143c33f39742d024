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
        /// As ``system(localtimePath:readsTZ:)`` reading `TZ`, with `tz` standing for its value
        /// (nil: unset): what a process started with that `TZ` sees, without changing the
        /// environment that every test of the process shares.
        case environment(tz: String?, localtimePath: String)
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
            return simulated.zone ?? systemZone(localtimePath: defaultLocaltimePath, tz: environmentTZ, slot: "TZ|")
        case .system(let path, let readsTZ):
            return systemZone(localtimePath: path, tz: readsTZ ? environmentTZ : nil, slot: readsTZ ? "TZ|" : "")
        case .environment(let tz, let path):
            return systemZone(localtimePath: path, tz: tz, slot: "env|")
        }
    }

    /// Checks that the zone ``current`` reads can be used, for a schedule read in the local zone
    /// that is about to be created: `TZ`, when the source reads it, must name a zone (see
    /// ``check(tz:)``). Only `TZ` is checked: a link that does not name a zone may be a moment of
    /// its replacement, which ``current`` rides out.
    ///
    /// - Throws: ``LoopError`` `.invalidTimeZone` naming the value of `TZ`.
    package static func checkLocalZone() throws(LoopError) {
        switch source {
        case .simulated(let simulated):
            if simulated.zone == nil { try check(tz: environmentTZ) }
        case .system(_, let readsTZ):
            if readsTZ { try check(tz: environmentTZ) }
        case .environment(let tz, _):
            try check(tz: tz)
        }
    }

    /// Checks a value of `TZ` (nil: unset, which is fine). Accepted, as the C library reads them:
    /// empty or `:` (UTC); a zone name, with or without a leading `:` (`Europe/Berlin`,
    /// `EST5EDT`, also a file of tzdata); a path into a zoneinfo directory, or a link to one
    /// (`/etc/localtime`); a POSIX string without daylight saving (`UTC0`, `JST-9`, `<+0330>-3:30`),
    /// a fixed offset. Rejected: a POSIX string with daylight-saving rules
    /// (`EST5EDT,M3.2.0,M11.1.0`), which Foundation's `TimeZone` cannot represent, and anything
    /// that names no zone (`Nowhere/Foo`), which the C library would silently read as UTC.
    ///
    /// - Throws: ``LoopError`` `.invalidTimeZone` naming the value, e.g. "TZ='EST5EDT,M3.2.0,M11.1.0'
    ///   is a POSIX rule string; loops needs a zone name such as America/New_York or Europe/Berlin".
    package static func check(tz value: String?) throws(LoopError) {
        guard let value else { return }
        if case .unusable(let problem) = read(tz: value) {
            throw LoopError(.invalidTimeZone, problem)
        }
    }

    /// The value of `TZ` in this process's environment, nil when unset.
    private static var environmentTZ: String? {
        getenv("TZ").map { String(cString: $0) }
    }

    /// Forgets what was resolved, and Foundation's cached system zone with it: called when the
    /// link changed, so that a zone read from something other than a link (a regular file,
    /// which Foundation parses) is read again too.
    package static func invalidate() {
        cache.withLock { $0.removeAll() }
        NSTimeZone.resetSystemTimeZone()
    }

    /// The zone of `tz` (the value of `TZ`, nil when it is not read or unset), else of the link
    /// at `path`; resolutions are cached under `slot` + `path`.
    private static func systemZone(localtimePath path: String, tz: String?, slot slotPrefix: String) -> TimeZone {
        let key = currentKey(localtimePath: path, tz: tz)
        let slot = slotPrefix + path
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

    /// `TZ=<value>` when `tz` is given, else `link:<target of the link>` (`link:` when
    /// there is no link), or `file:` when the path is not a symbolic link.
    private static func currentKey(localtimePath path: String, tz: String?) -> String {
        if let tz {
            return "TZ=" + tz
        }
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink(path, &buffer, buffer.count - 1)
        guard length > 0 else { return errno == EINVAL ? "file:" : "link:" }
        return "link:" + String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The zone a key names, nil when it names none (then the caller falls back).
    static func resolve(_ key: String) -> TimeZone? {
        if key.hasPrefix("TZ=") {
            if case .zone(let zone) = read(tz: String(key.dropFirst(3))) { return zone }
            return nil
        }
        guard key.hasPrefix("link:") else { return nil }
        let target = String(key.dropFirst(5))
        return target.isEmpty ? nil : zone(fromPath: target)
    }

    /// What a value of `TZ` means to schedules.
    enum TZReading: Equatable {
        /// The zone it names.
        case zone(TimeZone)
        /// It names no zone that Foundation can represent: the sentence says why, naming it.
        case unusable(String)
    }

    /// Reads a value of `TZ` the way the C library does (`tzset(3)`): after a `:` only a file
    /// name or path; otherwise a file of the zoneinfo directory (`TZDIR`) first, then a POSIX
    /// string (`std offset [dst [offset] [,rule]]`). Where the C library would fall back to UTC
    /// without a word, or use rules `TimeZone` cannot hold, the reading is `.unusable`.
    static func read(tz value: String) -> TZReading {
        let suggestion = "loops needs a zone name such as America/New_York or Europe/Berlin"
        let unknown = TZReading.unusable("TZ='\(value)' is not a time zone the system knows; \(suggestion)")
        var name = Substring(value)
        let fileOnly = name.hasPrefix(":")
        if fileOnly { name = name.dropFirst() }
        guard !name.isEmpty else { return .zone(TimeZone(identifier: "UTC") ?? .gmt) }

        if name.hasPrefix("/") {
            let path = String(name)
            if let zone = zone(fromPath: path) ?? canonicalPath(path).flatMap(zone(fromPath:)) {
                return .zone(zone)
            }
            return .unusable(
                canonicalPath(path) == nil
                    ? "TZ='\(value)' names no file; \(suggestion)"
                    : "TZ='\(value)' is not a file of a zoneinfo directory; \(suggestion)"
            )
        }

        // A file of tzdata: EST5EDT and CET are files as well as POSIX-looking names.
        let directory = getenv("TZDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
            ?? "/usr/share/zoneinfo"
        let file = directory + "/" + name
        if !name.split(separator: "/").contains(".."), isRegularFile(file) {
            var identifier = name
            for prefix in ["posix/", "right/"] where identifier.hasPrefix(prefix) {
                identifier = identifier.dropFirst(prefix.count)
            }
            if let zone = TimeZone(identifier: String(identifier)) ?? canonicalPath(file).flatMap(zone(fromPath:)) {
                return .zone(zone)
            }
            return unknown
        }
        if !fileOnly, let posix = POSIXTimeZone(parsing: name) {
            if !posix.hasDaylightSaving {
                guard let zone = TimeZone(secondsFromGMT: -posix.standardOffset) else {
                    return .unusable("TZ='\(value)' has an offset beyond 18 hours; \(suggestion)")
                }
                return .zone(zone)
            }
            // Without a rule (EST5EDT where tzdata is not installed) Foundation may know the name.
            if !posix.hasRule, let zone = TimeZone(identifier: String(name)) {
                return .zone(zone)
            }
            return .unusable("TZ='\(value)' is a POSIX rule string; \(suggestion)")
        }
        // A name Foundation knows from its own data (a system without tzdata files).
        if let zone = TimeZone(identifier: String(name)) {
            return .zone(zone)
        }
        return unknown
    }

    /// `path` with every link resolved, nil when it does not exist.
    private static func canonicalPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Whether `path` is a regular file, following links.
    private static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
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

/// The parts of a POSIX `TZ` string (`std offset [dst [offset] [,start[/time],end[/time]]]`,
/// as `tzset(3)` reads it) that decide whether a fixed-offset `TimeZone` can stand for it.
struct POSIXTimeZone: Equatable {
    /// The standard offset in seconds, positive west of Greenwich as POSIX writes it (`EST5` is
    /// 18000, UTC−5).
    let standardOffset: Int
    /// A daylight-saving name follows the standard offset.
    let hasDaylightSaving: Bool
    /// A `,start,end` rule follows.
    let hasRule: Bool

    /// Parses `text`; nil when it is not a POSIX `TZ` string (names of 3 or more letters or
    /// `<…>`-quoted, offsets `[+-]hh[:mm[:ss]]` up to 24 hours).
    init?(parsing text: Substring) {
        var rest = text[...]
        guard Self.name(&rest), let offset = Self.offset(&rest) else { return nil }
        standardOffset = offset
        if rest.isEmpty {
            hasDaylightSaving = false
            hasRule = false
            return
        }
        // `EST5,M3.2.0,M11.1.0` (a rule without a name) counts as a rule string too.
        hasDaylightSaving = true
        if rest.first != "," {
            guard Self.name(&rest) else { return nil }
            if let first = rest.first, first != "," {
                guard Self.offset(&rest) != nil else { return nil }
            }
        }
        hasRule = rest.first == ","
        guard hasRule || rest.isEmpty else { return nil }
    }

    /// Consumes a zone abbreviation: 3 or more ASCII letters, or `<` 3 or more letters, digits,
    /// `+` and `-` `>`.
    private static func name(_ text: inout Substring) -> Bool {
        if text.first == "<" {
            guard let close = text.firstIndex(of: ">") else { return false }
            let inner = text[text.index(after: text.startIndex)..<close]
            guard inner.count >= 3, inner.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "-") })
            else { return false }
            text = text[text.index(after: close)...]
            return true
        }
        let letters = text.prefix(while: { $0.isASCII && $0.isLetter })
        guard letters.count >= 3 else { return false }
        text = text.dropFirst(letters.count)
        return true
    }

    /// Consumes `[+-]hh[:mm[:ss]]` and returns it in seconds; nil when there is none.
    private static func offset(_ text: inout Substring) -> Int? {
        var sign = 1
        if let first = text.first, first == "+" || first == "-" {
            sign = first == "-" ? -1 : 1
            text = text.dropFirst()
        }
        var parts: [Int] = []
        while parts.count < 3 {
            if !parts.isEmpty {
                guard text.first == ":" else { break }
                text = text.dropFirst()
            }
            let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
            guard (1...2).contains(digits.count), let value = Int(digits) else { return nil }
            parts.append(value)
            text = text.dropFirst(digits.count)
        }
        guard parts[0] <= 24, parts.dropFirst().allSatisfy({ $0 <= 59 }) else { return nil }
        let seconds = parts[0] * 3600 + (parts.count > 1 ? parts[1] * 60 : 0) + (parts.count > 2 ? parts[2] : 0)
        return sign * seconds
    }
}
