import FuzzSupport
import Loops

/// `Schedule.calendar(_:)` on the input; an accepted expression's instants are checked from
/// several starts in a zone with daylight saving.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCalendar(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    Fuzz.setUp()
    let text = Fuzz.text(data, count)
    guard let schedule = try? Schedule.calendar(text) else { return 0 }
    Fuzz.checkInstants(of: schedule, input: text)
    return 0
}
