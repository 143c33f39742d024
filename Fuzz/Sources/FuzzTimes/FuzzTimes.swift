import FuzzSupport
import Loops
import LoopsCommandLine

/// The `--times` parser on the input; accepted times of day are checked as a schedule.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTimes(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    Fuzz.setUp()
    let text = Fuzz.text(data, count)
    guard let times = try? TimesFormat.parse(text) else { return 0 }
    guard !times.isEmpty else { fatalError("\(text.debugDescription) parsed into no times") }
    Fuzz.checkInstants(of: .times(times), input: text)
    return 0
}
