import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The zone a calendar expression is read in: its optional last word.
enum CalendarZone: Hashable, Sendable {
    /// No suffix: the system's zone, resolved again at each computation so that a change of
    /// `TZ` or `/etc/localtime` is followed.
    case local
    /// ` UTC` (any case).
    case utc
    /// An IANA zone name such as `Europe/Berlin` (a file of the system's zoneinfo database).
    case named(TimeZone)
    /// One of the local zone's own abbreviations (`CET`, `CEST` in Berlin): the local zone,
    /// but only while its daylight-saving flag equals `daylightSaving` (systemd's `dst` field).
    case localAbbreviation(String, daylightSaving: Bool)

    /// The suffix of systemd's normalized form, including the leading space ("" for local).
    var normalizedSuffix: String {
        switch self {
        case .local: return ""
        case .utc: return " UTC"
        case .named(let zone): return " " + zone.identifier
        case .localAbbreviation(let name, _): return " " + name
        }
    }

    /// The daylight-saving flag an instant must have to fire (systemd's `dst` field); `nil`
    /// for any.
    var requiredDaylightSaving: Bool? {
        if case .localAbbreviation(_, let daylightSaving) = self { return daylightSaving }
        return nil
    }

    /// The zone named by `name` if systemd would accept it: `UTC`, or a name made of
    /// `[A-Za-z0-9_+-]` parts that names a regular TZif file under `/usr/share/zoneinfo`.
    /// Returns `.failure` with a reason when the file exists but Foundation cannot read it
    /// (for instance `right/UTC`, which counts leap seconds).
    static func named(_ name: String) -> Result<CalendarZone, CalendarSyntaxError>? {
        guard isValidZoneName(name) else { return nil }
        if name == "UTC" { return .success(.utc) }
        guard let zone = TimeZone(identifier: name) else {
            return .failure(CalendarSyntaxError("time zone \"\(name)\" is in the zoneinfo database but not supported here"))
        }
        return .success(.named(zone))
    }

    /// systemd's `timezone_is_valid`: a syntactic check, then the zoneinfo file's magic.
    private static func isValidZoneName(_ name: String) -> Bool {
        if name == "UTC" { return true }
        guard !name.isEmpty, name.utf8.count < 4096, name.first != "/", name.last != "/" else { return false }
        var previousWasSlash = false
        for byte in name.utf8 {
            let isAllowed = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
                || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x5F || byte == 0x2B
                || byte == 0x2F
            guard isAllowed else { return false }
            if byte == 0x2F {
                if previousWasSlash { return false }
                previousWasSlash = true
            } else {
                previousWasSlash = false
            }
        }
        let path = "/usr/share/zoneinfo/" + name
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let magic = (try? handle.read(upToCount: 4)) ?? Data()
        return magic == Data("TZif".utf8)
    }

    /// The local zone's standard and daylight-saving abbreviations, as glibc's `tzname` after
    /// `tzset()` (Foundation only offers `GMT+1`-style names on Linux). Read from the C
    /// library at parse time, as systemd does.
    static func localAbbreviations() -> (standard: String?, daylightSaving: String?) {
        tzset()
        var standard: String?
        var daylightSaving: String?
        let now = time(nil)
        // Probe a year around now at monthly steps: both halves of any DST regime show up.
        for month in 0..<12 {
            var instant = now + time_t(month) * 2_629_800
            var broken = tm()
            guard localtime_r(&instant, &broken) != nil, let zonePointer = broken.tm_zone else { continue }
            let name = String(cString: zonePointer)
            if broken.tm_isdst > 0 {
                if daylightSaving == nil { daylightSaving = name }
            } else if standard == nil {
                standard = name
            }
        }
        return (standard, daylightSaving)
    }
}
