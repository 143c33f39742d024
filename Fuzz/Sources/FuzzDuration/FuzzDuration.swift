import FuzzSupport
import Loops
import LoopsCommandLine

/// The `--every` parser on the input: an accepted duration is never negative, and the
/// schedule it makes behaves.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDuration(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let text = Fuzz.text(data, count)
    guard let duration = try? DurationFormat.parse(text) else { return 0 }
    guard duration >= .zero else { fatalError("\(text.debugDescription) parsed into \(duration)") }
    // A zero interval fires at the start again and again; the instants are checked for the rest.
    if duration > .zero {
        Fuzz.checkInstants(of: .every(duration), input: text, strictlyIncreasing: false)
    }
    return 0
}
