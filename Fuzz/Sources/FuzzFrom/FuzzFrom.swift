import Foundation
import FuzzSupport
import LoopsCommandLine

/// The `--from` parser on the input: an accepted instant before 10000-01-01 prints with a
/// four-digit year, and what it prints reads back and prints the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrom(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let text = Fuzz.text(data, count)
    guard let date = InstantFormat.parse(text) else { return 0 }
    // 9999-12-31T23:59:60Z or 23:59:59.9999999Z are 10000-01-01 as a `Date`: accepted, and
    // every schedule is empty from there, so nothing of them is ever printed.
    guard date < Fuzz.endOfInstants else { return 0 }
    let printed = InstantFormat.format(date)
    guard printed.utf8.count == 27, let again = InstantFormat.parse(printed) else {
        fatalError("\(text.debugDescription) → \(printed), which does not parse")
    }
    guard InstantFormat.format(again) == printed else {
        fatalError("\(text.debugDescription) → \(printed) → \(InstantFormat.format(again))")
    }
    return 0
}
