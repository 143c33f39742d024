import Foundation
import FuzzSupport
import Loops

/// The zones the cron target reads expressions in: the system's (Europe/Berlin here), UTC, and
/// zones whose changes are not a whole hour or go the other way.
private let zones: [TimeZone?] = [
    nil, TimeZone(identifier: "UTC"), TimeZone(identifier: "Australia/Lord_Howe"),
    TimeZone(identifier: "America/Santiago"),
]

/// `Schedule.cron(_:timeZone:)` on the input (its first byte picks the zone); an accepted
/// expression's instants are checked from several starts.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCron(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    Fuzz.setUp()
    guard let data, count > 0 else { return 0 }
    let zone = zones[Int(data[0]) % zones.count]
    let text = Fuzz.text(data + 1, count - 1)
    guard let schedule = try? Schedule.cron(text, timeZone: zone) else { return 0 }
    Fuzz.checkInstants(of: schedule, input: text)
    return 0
}
