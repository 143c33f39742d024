import Foundation

/// One of the five fields of a cron expression, parsed into a bit set of allowed values.
struct CronField: Hashable, Sendable {
    /// Which field, with its name in messages, its range and its names.
    struct Kind: Sendable {
        let name: String
        let range: ClosedRange<Int>
        /// Three-letter names, lowercased, for the values starting at `namesStart`.
        let names: [String]
        let namesStart: Int

        static let minute = Kind(name: "minute", range: 0...59, names: [], namesStart: 0)
        static let hour = Kind(name: "hour", range: 0...23, names: [], namesStart: 0)
        static let dayOfMonth = Kind(name: "day-of-month", range: 1...31, names: [], namesStart: 0)
        static let month = Kind(
            name: "month",
            range: 1...12,
            names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
            namesStart: 1
        )
        /// 0 and 7 are both Sunday, as in Vixie cron.
        static let dayOfWeek = Kind(
            name: "day-of-week",
            range: 0...7,
            names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
            namesStart: 0
        )
    }

    /// Bit `n` is set when value `n` is allowed (day-of-week 7 is folded onto 0).
    let bits: UInt64
    /// The field starts with `*` (`*` or `*/n`): Vixie cron calls such a day field
    /// unrestricted, which decides between AND and OR of the two day fields.
    let startsWithStar: Bool
    /// The field contains a `*` or a step: for the hour field this makes an entry follow
    /// elapsed time across daylight-saving changes instead of firing at a fixed wall time.
    let isWildcardOrStepped: Bool

    func contains(_ value: Int) -> Bool {
        value >= 0 && value < 64 && bits & (1 << UInt64(value)) != 0
    }

    /// The smallest allowed value ≥ `value`, if any.
    func first(atOrAfter value: Int) -> Int? {
        guard value < 64 else { return nil }
        let remaining = bits >> UInt64(max(value, 0))
        guard remaining != 0 else { return nil }
        return max(value, 0) + remaining.trailingZeroBitCount
    }

    /// Parses a field: lists of `*`, values, names, ranges `a-b` and steps `*/n`, `a-b/n`, `a/n`
    /// (the last means `a` to the end of the range, as in cronie).
    ///
    /// - Throws: ``LoopError`` `.invalidSchedule` naming the field and the bad part.
    init(parsing text: Substring, as kind: Kind) throws {
        func fail(_ problem: String) -> LoopError {
            LoopError(.invalidSchedule, "cron \(kind.name) field: \(problem)")
        }
        var bits: UInt64 = 0
        var wildcard = false
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard !item.isEmpty else {
                throw fail("empty item in list '\(text)'")
            }
            let stepParts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard stepParts.count <= 2 else {
                throw fail("'\(item)' has more than one step")
            }
            var step = 1
            if stepParts.count == 2 {
                wildcard = true
                let stepText = stepParts[1]
                guard !stepText.isEmpty, stepText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                    throw fail("step '\(stepText)' in '\(item)' is not a number")
                }
                guard let value = Int(stepText), value >= 1, value <= kind.range.upperBound + 1 else {
                    throw fail(
                        "step \(stepText) in '\(item)' is out of range 1-\(kind.range.upperBound + 1)"
                    )
                }
                step = value
            }
            let base = stepParts[0]
            let low: Int
            let high: Int
            if base == "*" {
                wildcard = true
                (low, high) = (kind.range.lowerBound, kind.range.upperBound)
            } else if base.contains("-") {
                let ends = base.split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count == 2, !ends[0].isEmpty, !ends[1].isEmpty else {
                    throw fail("'\(base)' is not a range a-b")
                }
                low = try Self.value(ends[0], kind, fail)
                high = try Self.value(ends[1], kind, fail)
                guard low <= high else {
                    throw fail("range \(base) is backwards (\(low) > \(high))")
                }
            } else {
                low = try Self.value(base, kind, fail)
                high = stepParts.count == 2 ? kind.range.upperBound : low
            }
            for value in stride(from: low, through: high, by: step) {
                bits |= 1 << UInt64(value)
            }
        }
        if kind.name == Kind.dayOfWeek.name, bits & (1 << 7) != 0 {
            bits = (bits & ~(1 << 7)) | 1
        }
        self.bits = bits
        self.startsWithStar = text.hasPrefix("*")
        self.isWildcardOrStepped = wildcard
    }

    /// A number or (for month and day-of-week) a three-letter name, case-insensitive.
    private static func value(
        _ text: Substring,
        _ kind: Kind,
        _ fail: (String) -> LoopError
    ) throws -> Int {
        if text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            guard let value = Int(text), kind.range.contains(value) else {
                throw fail("\(text) is out of range \(kind.range.lowerBound)-\(kind.range.upperBound)")
            }
            return value
        }
        if let index = kind.names.firstIndex(of: text.lowercased()) {
            return kind.namesStart + index
        }
        if kind.names.isEmpty {
            throw fail("'\(text)' is not a number")
        }
        let first = kind.names[0].capitalized
        let last = kind.names[kind.names.count - 1].capitalized
        throw fail("'\(text)' is not a number or a name \(first)-\(last)")
    }
}
